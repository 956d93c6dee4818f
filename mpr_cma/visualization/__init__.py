"""Visualisation: mask overlays (paper Fig. 4) and MBA attention maps (Fig. 5)."""

from mpr_cma.visualization.overlay import (
    PALETTE,
    attention_maps,
    attention_summary_map,
    normalize_map,
    overlay_heatmap,
    overlay_masks,
)

__all__ = ["PALETTE", "attention_maps", "attention_summary_map", "normalize_map",
           "overlay_heatmap", "overlay_masks"]
