"""Models: Mask-Biased Attention (and its FiLM variant), the InternVL-compatible MLLM, the
SAM-2 grounding head and the whole Sa2VA-MBA model."""

from mpr_cma.models.grounding import SAM2Grounding
from mpr_cma.models.mba import (
    MaskBiasedAttention,
    MaskBiasedFiLM,
    RoutedTokens,
    TopKTextRouter,
)
from mpr_cma.models.mllm import InternVLChatModel, build_internvl_from_preset
from mpr_cma.models.sa2va import Sa2VAMBA

__all__ = [
    "InternVLChatModel",
    "MaskBiasedAttention",
    "MaskBiasedFiLM",
    "RoutedTokens",
    "SAM2Grounding",
    "Sa2VAMBA",
    "TopKTextRouter",
    "build_internvl_from_preset",
]
