"""Models: Mask-Biased Attention (and its FiLM variant) and the SAM-2 grounding head.

The InternVL-compatible MLLM and the whole Sa2VA-MBA model arrive with the model issue.
"""

from mpr_cma.models.grounding import SAM2Grounding
from mpr_cma.models.mba import (
    MaskBiasedAttention,
    MaskBiasedFiLM,
    RoutedTokens,
    TopKTextRouter,
)

__all__ = [
    "MaskBiasedAttention",
    "MaskBiasedFiLM",
    "RoutedTokens",
    "SAM2Grounding",
    "TopKTextRouter",
]
