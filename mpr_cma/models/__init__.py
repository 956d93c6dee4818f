"""Models: Mask-Biased Attention (and its FiLM variant); the MLLM, SAM-2 grounding and the
whole Sa2VA-MBA model arrive with the model issue."""

from mpr_cma.models.mba import (
    MaskBiasedAttention,
    MaskBiasedFiLM,
    RoutedTokens,
    TopKTextRouter,
)

__all__ = ["MaskBiasedAttention", "MaskBiasedFiLM", "RoutedTokens", "TopKTextRouter"]
