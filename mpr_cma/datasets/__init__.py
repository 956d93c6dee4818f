"""Datasets: readers and writers of the benchmarks' on-disk formats.

- rle: COCO run-length encoding of masks (encode, check, decode).
- refcoco_format: RefCOCO / RefCOCO+ / RefCOCOg (REFER pickles + COCO instances.json).
- refvos_format: referring video (MeViS, Ref-DAVIS17, Ref-YTVOS, ReVOS layout).
"""

from mpr_cma.datasets.refcoco_format import (
    DATASETS as REFCOCO_DATASETS,
)
from mpr_cma.datasets.refcoco_format import (
    DEFAULT_IMAGE_ROOT,
    DEFAULT_SPLIT_BY,
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
from mpr_cma.datasets.refvos_format import (
    Expression,
    RefVOSSplit,
    natural_sorted,
    write_refvos_split,
)
from mpr_cma.datasets.rle import decode_rle, encode_mask, rle_run_lengths

__all__ = [
    "DEFAULT_IMAGE_ROOT",
    "DEFAULT_SPLIT_BY",
    "REFCOCO_DATASETS",
    "Expression",
    "RefCocoRecord",
    "RefVOSSplit",
    "decode_rle",
    "encode_mask",
    "load_refcoco",
    "natural_sorted",
    "read_instances",
    "read_refs",
    "ref_mask",
    "rle_run_lengths",
    "segmentation_to_mask",
    "sentence_items",
    "validate_segmentation",
    "write_refcoco",
    "write_refvos_split",
]
