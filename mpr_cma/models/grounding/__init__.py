"""SAM-2 grounding: the `sam2` package's SAM2Base prompted by [SEG] embeddings, with
optional Mask-Biased Attention between two mask-decoder passes, for images and videos."""

from mpr_cma.models.grounding.builder import (
    DEFAULT_SAM2_CONFIG,
    build_language_sam2,
    image_size_overrides,
    load_sam2_checkpoint,
    tiny_sam2_overrides,
)
from mpr_cma.models.grounding.sam2_base import LanguagePromptSAM2
from mpr_cma.models.grounding.sam2_grounding import (
    DecoderOutput,
    GroundingFeatures,
    SAM2Grounding,
)
from mpr_cma.models.grounding.transforms import (
    logits_to_masks,
    normalize,
    resize_frames,
    sam2_input,
    upsample_mask_logits,
)

__all__ = [
    "DEFAULT_SAM2_CONFIG",
    "DecoderOutput",
    "GroundingFeatures",
    "LanguagePromptSAM2",
    "SAM2Grounding",
    "build_language_sam2",
    "image_size_overrides",
    "load_sam2_checkpoint",
    "logits_to_masks",
    "normalize",
    "resize_frames",
    "sam2_input",
    "tiny_sam2_overrides",
    "upsample_mask_logits",
]
