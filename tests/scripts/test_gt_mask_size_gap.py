"""scripts/gt_mask_size_gap.py: the two ground-truth grids agree where they must, differ
where the low-res grid is coarser, and the script reports both geometries."""

import importlib.util
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def load():
    spec = importlib.util.spec_from_file_location(
        "gt_mask_size_gap", ROOT / "scripts" / "gt_mask_size_gap.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def disc(n: int = 40, r: float = 9.5) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    return (((x - 17.3) ** 2 + (y - 21.8) ** 2) <= r * r)[None]


def test_same_grid_has_no_gap_and_a_coarser_one_has():
    gap = load()
    same = gap.compare(disc(), 32, 32, 500, seed=0)
    assert same["mean_abs_diff"] == same["loss_mean_abs_diff"] == 0.0
    assert same["bce_pred"] == same["bce_input"] and same["dice_pred"] == same["dice_input"]
    coarse = gap.compare(disc(), 8, 32, 500, seed=0)
    assert coarse["points_differ"] > 0 and coarse["loss_points_differ"] > 0
    assert coarse["vanished"] == 0


def test_a_mask_thinner_than_the_low_res_grid_vanishes():
    gap = load()
    line = torch.zeros(1, 32, 32, dtype=torch.bool)
    line[:, :, 5] = True   # column 5 of 32: nearest to 8 columns reads 0, 4, 8, ...
    assert gap.compare(line, 8, 32, 100, seed=0)["vanished"] == 1


def test_reports_both_geometries(capsys):
    load().main(["--scenes", "2"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" (")[0] for line in lines] == ["1B", "tiny"]
