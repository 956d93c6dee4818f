"""Datasets: readers and writers of the benchmarks' on-disk formats.

- rle: COCO run-length encoding of masks (encode, check, decode).
- refcoco_format: RefCOCO / RefCOCO+ / RefCOCOg (REFER pickles + COCO instances.json).
- refvos_format: referring video (MeViS, Ref-DAVIS17, Ref-YTVOS, ReVOS layout), anno_ids;
  refvos_writer writes that layout.
- layouts: where the files lie, in this project's layout or Sa2VA's folders.
- files: JSON / pickle reading with one clear error for a corrupt file.
- synthetic_scene, synthetic: a seeded referring benchmark of coloured shapes (images in
  the RefCOCO layout, moving shapes in the MeViS layout) for the demo.
- conversation, refcoco, refvos, vqa: training samples (Sa2VA-style conversations with one
  [SEG] per object and exact expression spans); collate, samplers: batching.
"""

from mpr_cma.datasets.base import (
    BAD_SAMPLE_ERRORS,
    SkippingDataset,
    check_path,
    sam2_pixels,
    sentence_ids,
)
from mpr_cma.datasets.collate import sa2va_collate
from mpr_cma.datasets.conversation import (
    MAX_OBJECTS,
    EncodedConversation,
    encode_referring,
    encode_referring_fitting,
    sample_objects,
)
from mpr_cma.datasets.files import CorruptFileError, read_json, read_pickle
from mpr_cma.datasets.layouts import (
    LAYOUTS,
    RefCocoLocation,
    locate_refcoco,
    locate_video_split,
)
from mpr_cma.datasets.refcoco import RefCOCODataset, build_tokenizer, num_tiles
from mpr_cma.datasets.refcoco_format import (
    DATASETS as REFCOCO_DATASETS,
)
from mpr_cma.datasets.refcoco_format import (
    DEFAULT_IMAGE_ROOT,
    DEFAULT_SPLIT_BY,
    GT_RULES,
    RefCocoRecord,
    load_refcoco,
    read_instances,
    read_refs,
    ref_mask,
    segmentation_to_mask,
    sentence_items,
    validate_segmentation,
    write_refcoco,
)
from mpr_cma.datasets.refvos import RefVOSDataset
from mpr_cma.datasets.refvos_format import (
    ANNO_ID_RULES,
    DATASET_ANNO_ID_RULES,
    Expression,
    RefVOSSplit,
    sa2va_anno_ids,
    write_refvos_split,
)
from mpr_cma.datasets.rle import decode_rle, encode_mask, rle_run_lengths
from mpr_cma.datasets.samplers import (
    ConcatDataset,
    LengthGroupedSampler,
    dataset_lengths,
    length_grouped_indices,
)
from mpr_cma.datasets.synthetic import (
    Desc,
    Ref,
    SyntheticConfig,
    generate_synthetic,
    image_expressions,
    ref_text,
    resolve,
    video_expressions,
)
from mpr_cma.datasets.synthetic_scene import (
    SceneObject,
    render,
    sample_image_scene,
    sample_video_scene,
)
from mpr_cma.datasets.vqa import LLaVADataset

__all__ = [
    "ANNO_ID_RULES",
    "BAD_SAMPLE_ERRORS",
    "CorruptFileError",
    "DATASET_ANNO_ID_RULES",
    "LAYOUTS",
    "RefCocoLocation",
    "ConcatDataset",
    "DEFAULT_IMAGE_ROOT",
    "DEFAULT_SPLIT_BY",
    "Desc",
    "EncodedConversation",
    "Expression",
    "GT_RULES",
    "LLaVADataset",
    "LengthGroupedSampler",
    "MAX_OBJECTS",
    "REFCOCO_DATASETS",
    "Ref",
    "RefCOCODataset",
    "RefCocoRecord",
    "RefVOSDataset",
    "RefVOSSplit",
    "SceneObject",
    "SkippingDataset",
    "SyntheticConfig",
    "build_tokenizer",
    "check_path",
    "dataset_lengths",
    "decode_rle",
    "encode_mask",
    "encode_referring",
    "encode_referring_fitting",
    "generate_synthetic",
    "image_expressions",
    "length_grouped_indices",
    "load_refcoco",
    "locate_refcoco",
    "locate_video_split",
    "num_tiles",
    "read_instances",
    "read_json",
    "read_pickle",
    "read_refs",
    "ref_mask",
    "ref_text",
    "render",
    "resolve",
    "rle_run_lengths",
    "sa2va_anno_ids",
    "sa2va_collate",
    "sam2_pixels",
    "sample_image_scene",
    "sample_objects",
    "sample_video_scene",
    "segmentation_to_mask",
    "sentence_ids",
    "sentence_items",
    "validate_segmentation",
    "video_expressions",
    "write_refcoco",
    "write_refvos_split",
]
