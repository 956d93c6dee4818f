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
  [SEG] per object and exact expression spans); repeat: Sa2VA's dataset repeats; collate,
  samplers: batching.

Names are imported on first use (PEP 562), so a light module (the RLE codec, the
referring-video split reader) does not pull in torch, transformers or the model stack;
the registering modules are imported by mpr_cma.registry when a config needs them.
"""

from mpr_cma.lazy_exports import lazy_exports

# name -> (submodule, attribute)
_EXPORTS = {
    "BAD_SAMPLE_ERRORS": ("base", "BAD_SAMPLE_ERRORS"),
    "SkippingDataset": ("base", "SkippingDataset"),
    "check_path": ("base", "check_path"),
    "sam2_pixels": ("base", "sam2_pixels"),
    "sentence_ids": ("base", "sentence_ids"),
    "sa2va_collate": ("collate", "sa2va_collate"),
    "EncodedConversation": ("conversation", "EncodedConversation"),
    "MAX_OBJECTS": ("conversation", "MAX_OBJECTS"),
    "encode_referring": ("conversation", "encode_referring"),
    "encode_referring_fitting": ("conversation", "encode_referring_fitting"),
    "sample_objects": ("conversation", "sample_objects"),
    "CorruptFileError": ("files", "CorruptFileError"),
    "read_json": ("files", "read_json"),
    "read_pickle": ("files", "read_pickle"),
    "LAYOUTS": ("layouts", "LAYOUTS"),
    "RefCocoLocation": ("layouts", "RefCocoLocation"),
    "locate_refcoco": ("layouts", "locate_refcoco"),
    "locate_video_split": ("layouts", "locate_video_split"),
    "RefCOCODataset": ("refcoco", "RefCOCODataset"),
    "build_tokenizer": ("refcoco", "build_tokenizer"),
    "num_tiles": ("refcoco", "num_tiles"),
    "DEFAULT_IMAGE_ROOT": ("refcoco_format", "DEFAULT_IMAGE_ROOT"),
    "DEFAULT_SPLIT_BY": ("refcoco_format", "DEFAULT_SPLIT_BY"),
    "GT_RULES": ("refcoco_format", "GT_RULES"),
    "REFCOCO_DATASETS": ("refcoco_format", "DATASETS"),
    "RefCocoRecord": ("refcoco_format", "RefCocoRecord"),
    "load_refcoco": ("refcoco_format", "load_refcoco"),
    "read_instances": ("refcoco_format", "read_instances"),
    "read_refs": ("refcoco_format", "read_refs"),
    "ref_mask": ("refcoco_format", "ref_mask"),
    "segmentation_to_mask": ("refcoco_format", "segmentation_to_mask"),
    "sentence_items": ("refcoco_format", "sentence_items"),
    "validate_segmentation": ("refcoco_format", "validate_segmentation"),
    "write_refcoco": ("refcoco_format", "write_refcoco"),
    "RefVOSDataset": ("refvos", "RefVOSDataset"),
    "RepeatedDataset": ("repeat", "RepeatedDataset"),
    "ANNO_ID_RULES": ("refvos_format", "ANNO_ID_RULES"),
    "DATASET_ANNO_ID_RULES": ("refvos_format", "DATASET_ANNO_ID_RULES"),
    "Expression": ("refvos_format", "Expression"),
    "RefVOSSplit": ("refvos_format", "RefVOSSplit"),
    "sa2va_anno_ids": ("refvos_format", "sa2va_anno_ids"),
    "write_refvos_split": ("refvos_format", "write_refvos_split"),
    "decode_rle": ("rle", "decode_rle"),
    "encode_mask": ("rle", "encode_mask"),
    "rle_run_lengths": ("rle", "rle_run_lengths"),
    "ConcatDataset": ("samplers", "ConcatDataset"),
    "LengthGroupedSampler": ("samplers", "LengthGroupedSampler"),
    "dataset_lengths": ("samplers", "dataset_lengths"),
    "Desc": ("synthetic", "Desc"),
    "Ref": ("synthetic", "Ref"),
    "SyntheticConfig": ("synthetic", "SyntheticConfig"),
    "generate_synthetic": ("synthetic", "generate_synthetic"),
    "image_expressions": ("synthetic", "image_expressions"),
    "ref_text": ("synthetic", "ref_text"),
    "resolve": ("synthetic", "resolve"),
    "video_expressions": ("synthetic", "video_expressions"),
    "SceneObject": ("synthetic_scene", "SceneObject"),
    "render": ("synthetic_scene", "render"),
    "sample_image_scene": ("synthetic_scene", "sample_image_scene"),
    "sample_video_scene": ("synthetic_scene", "sample_video_scene"),
    "LLaVADataset": ("vqa", "LLaVADataset"),
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
