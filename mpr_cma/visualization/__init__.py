"""Visualisation: mask overlays (paper Fig. 4), MBA attention maps (Fig. 5), figure grids
and training curves."""

from mpr_cma.visualization.curves import find_scalars, plot_training_curves, read_scalars, series
from mpr_cma.visualization.figures import save_figure_grid
from mpr_cma.visualization.overlay import (
    PALETTE,
    attention_maps,
    attention_summary_map,
    normalize_map,
    overlay_heatmap,
    overlay_masks,
)

__all__ = ["PALETTE", "attention_maps", "attention_summary_map", "find_scalars",
           "normalize_map", "overlay_heatmap", "overlay_masks", "plot_training_curves",
           "read_scalars", "save_figure_grid", "series"]
