"""Training curves from scalars.json and figure grids, written as PNG files."""

import json

import numpy as np
import pytest
from PIL import Image

from mpr_cma.visualization import (
    find_scalars,
    plot_training_curves,
    read_scalars,
    save_figure_grid,
    series,
)


def write_scalars(work_dir, rows, stamp="20260101_000000"):
    path = work_dir / stamp / "vis_data" / "scalars.json"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_read_scalars_keeps_numeric_series_in_order(tmp_path):
    path = write_scalars(tmp_path, [
        {"loss": 2.0, "loss_llm": 1.5, "lr": 1e-3, "iter": 10, "step": 10},
        {"loss": 1.0, "lr": 5e-4, "note": "x", "iter": 20, "step": 20},
    ])
    assert find_scalars(tmp_path) == [path]
    scalars = read_scalars(path)
    assert set(scalars) == {"loss", "loss_llm", "lr"}
    steps, values = scalars["loss"]
    assert steps.tolist() == [10, 20] and values.tolist() == [2.0, 1.0]
    assert scalars["loss_llm"][0].tolist() == [10]
    with pytest.raises(KeyError, match="'time'"):
        series(scalars, "time", path)


def test_a_resumed_run_is_merged_by_step_later_values_win(tmp_path):
    write_scalars(tmp_path, [{"loss": 3.0, "step": 10}, {"loss": 2.0, "step": 20}])
    # Killed after the checkpoint at step 10, resumed: step 20 is logged again.
    write_scalars(tmp_path, [{"loss": 1.9, "step": 20}, {"loss": 1.0, "step": 30}],
                  stamp="20260101_010000")
    steps, values = read_scalars(find_scalars(tmp_path))["loss"]
    assert steps.tolist() == [10, 20, 30] and values.tolist() == [3.0, 1.9, 1.0]


def test_bad_scalars_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="scalars.json"):
        find_scalars(tmp_path)
    path = write_scalars(tmp_path, [{"loss": 1.0}])
    with pytest.raises(ValueError, match=r"scalars.json:1"):
        read_scalars(path)
    with pytest.raises(ValueError, match="no loss series"):
        plot_training_curves({"lr": (np.arange(2), np.ones(2))}, tmp_path / "x.png")


def test_curves_and_grid_are_png_files(tmp_path):
    steps = np.arange(1, 21)
    series = {"loss": (steps, 5.0 / steps), "loss_dice": (steps, 1.0 / steps),
              "lr": (steps, np.full(20, 1e-3)), "gamma": (steps, steps / 20.0)}
    out = plot_training_curves(series, tmp_path / "curves" / "loss.png", title="t")
    assert Image.open(out).format == "PNG"
    panel = np.zeros((32, 32, 3), dtype=np.uint8)
    grid = save_figure_grid([[panel, panel], [panel, panel]], tmp_path / "grid.png",
                            ["a", "b"], ["first row", "second row"])
    width, height = Image.open(grid).size
    assert width > 0 and height > width  # two rows of two panels, plus captions


def test_grid_rejects_inconsistent_input(tmp_path):
    panel = np.zeros((8, 8, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="at least one row"):
        save_figure_grid([], tmp_path / "g.png", ["a"])
    with pytest.raises(ValueError, match="every row needs 2 panels"):
        save_figure_grid([[panel]], tmp_path / "g.png", ["a", "b"])
    with pytest.raises(ValueError, match="captions"):
        save_figure_grid([[panel]], tmp_path / "g.png", ["a"], ["x", "y"])
    with pytest.raises(ValueError, match="uint8"):
        save_figure_grid([[panel.astype(np.float32)]], tmp_path / "g.png", ["a"])
