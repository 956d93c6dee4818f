"""Paper-style figure grids (Fig. 4 overlays, Fig. 5 attention maps) written as PNG.

A grid is rows of equally many panels, each an (H, W, 3) uint8 RGB image (e.g. from
`overlay_masks` / `overlay_heatmap`); columns get titles and each row a caption (the
referring expression, wrapped).
"""

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_figure_grid(rows: Sequence[Sequence[np.ndarray]], out: str | Path,
                     column_titles: Sequence[str], row_captions: Sequence[str] | None = None,
                     cell_inches: float = 2.0, title: str = "") -> Path:
    """Write a grid of RGB panels to a PNG.

    Args:
        rows: R rows of C panels, each (H, W, 3) uint8.
        out: PNG path (parents are created).
        column_titles: C titles.
        row_captions: R captions written under each row's first panel (None: none).
        cell_inches: panel size.
        title: figure title.

    Returns:
        The PNG path.

    Raises:
        ValueError: no rows, rows of different lengths, or titles/captions that do not
            match the grid.
    """
    if not rows:
        raise ValueError("a figure grid needs at least one row")
    cols = len(column_titles)
    if any(len(row) != cols for row in rows):
        raise ValueError(f"every row needs {cols} panels (one per column title), got "
                         f"{[len(r) for r in rows]}")
    if row_captions is not None and len(row_captions) != len(rows):
        raise ValueError(f"{len(row_captions)} captions for {len(rows)} rows")
    fig, axes = plt.subplots(len(rows), cols, squeeze=False,
                             figsize=(cell_inches * cols, (cell_inches + 0.45) * len(rows)))
    for r, row in enumerate(rows):
        for c, panel in enumerate(row):
            panel = np.asarray(panel)
            if panel.ndim != 3 or panel.shape[2] != 3 or panel.dtype != np.uint8:
                raise ValueError(f"panel ({r}, {c}) must be (H, W, 3) uint8, got "
                                 f"{panel.shape} {panel.dtype}")
            ax = axes[r][c]
            ax.imshow(panel, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(column_titles[c], fontsize=9)
        if row_captions is not None:
            caption = "\n".join(textwrap.wrap(row_captions[r], 40)[:2])
            axes[r][0].set_xlabel(caption, fontsize=7, loc="left")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, out)


def save_figure(fig: plt.Figure, out: str | Path, dpi: int = 110) -> Path:
    """Lay out, write (parents created) and close a matplotlib figure; return the path."""
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out
