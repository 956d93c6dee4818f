"""InternVL-2.5-compatible MLLM: InternViT vision tower, pixel-shuffle MLP projector and a
Qwen2 LLM, with the key names of the InternVL2_5-1B / Sa2VA-1B checkpoints; its tokenizer
(plus a tiny shipped one), Qwen chat template and InternVL image tiling.

`tokenizer`, `template` and `preprocess` import no model code; import them directly
(`from mpr_cma.models.mllm.template import ...`) when only the text/image front-end is needed.
"""

from mpr_cma.models.mllm.configs import (
    INTERNVL2_5_IMG_CONTEXT_TOKEN_ID,
    TINY_IMG_CONTEXT_TOKEN_ID,
    TINY_TOKENIZER_VOCAB_SIZE,
    internvl2_5_1b_config,
    internvl_preset,
    tiny_internvl_config,
)
from mpr_cma.models.mllm.intern_vit import InternVisionModel
from mpr_cma.models.mllm.internvl import (
    InternVLChatModel,
    build_internvl_from_preset,
    count_parameters,
    llm_linear_module_names,
    load_internvl_checkpoint,
    pixel_shuffle,
)

__all__ = [
    "INTERNVL2_5_IMG_CONTEXT_TOKEN_ID",
    "TINY_IMG_CONTEXT_TOKEN_ID",
    "TINY_TOKENIZER_VOCAB_SIZE",
    "InternVLChatModel",
    "InternVisionModel",
    "count_parameters",
    "build_internvl_from_preset",
    "internvl2_5_1b_config",
    "internvl_preset",
    "llm_linear_module_names",
    "load_internvl_checkpoint",
    "pixel_shuffle",
    "tiny_internvl_config",
]
