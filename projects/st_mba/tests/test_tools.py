"""The project's measurement tools: the comparison table from two sweeps' results, the arms'
configs, and the benchmark's saved-tensor count."""

import importlib.util
import statistics
from pathlib import Path

import pytest
import torch

from mpr_cma.engine.config import load_config

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sweep_result(ciou, jf, step, activation):
    runs = [{"row": "mba_tmc_bound", "seed": s, "refcoco_val": {"cIoU": c, "gIoU": c},
             "mevis_valid_u": {"J&F": j}, "step_seconds": t}
            for s, (c, j, t) in enumerate(zip(ciou, jf, step, strict=True))]
    table = {"mba_tmc_bound": {"step_seconds": [statistics.fmean(step), None],
                               "activation_mib": activation, "trainable": 10}}
    yard = {"refcoco_val": {"cIoU": 0.2, "gIoU": 0.25}, "mevis_valid_u": {"J&F": 0.4}}
    return {"runs": runs, "table": table, "yardsticks": yard, "hardware": "test"}


def test_compare_table_means_stds_and_ratios():
    compare = load_tool("compare_st_mba")
    lines, table = compare.summarise({
        "per_frame": sweep_result([0.1, 0.2, 0.3], [0.3, 0.3, 0.3], [1.0, 1.0, 1.0], 8.0),
        "st_mba": sweep_result([0.2, 0.2, 0.2], [0.4, 0.5, 0.6], [1.5, 1.5, 1.5], 10.0)})
    assert table["st_mba"]["J&F"] == [0.4, 0.5, 0.6]
    assert table["st_mba"]["step_ratio"] == 1.5 and table["st_mba"]["activation_ratio"] == 1.25
    assert table["per_frame"]["step_ratio"] == 1.0
    assert "| st_mba | 0.200 ± 0.000 | 0.200 ± 0.000 | 0.500 ± 0.100 | 1.500 ± 0.000 | 1.500 |" \
        in "\n".join(lines)
    assert lines[-1].startswith("| yardstick: every object | 0.200 | 0.250 | 0.400 |")


def with_tiers(result, motion):
    """`result` with per-tier scores: motion J&F per seed, the image tiers fixed."""
    mean = statistics.fmean(motion)
    std = statistics.stdev(motion)
    result["table"]["mba_tmc_bound"]["tiers"] = {
        "attribute": (0.5, 0.01), "spatial": (0.3, 0.01), "size": (0.3, 0.01),
        "ordinal": (0.3, 0.01), "motion": (mean, std)}
    result["yardsticks"]["tiers"] = {
        name: {t: value for t in ("attribute", "spatial", "size", "ordinal", "motion")}
        for name, value in (("every_object", 0.2), ("right_shape", 0.4))}
    return result


def test_compare_tier_table_marks_differences_beyond_the_seed_spread():
    compare = load_tool("compare_st_mba")
    base = with_tiers(sweep_result([0.2] * 3, [0.5] * 3, [1.0] * 3, 8.0), [0.50, 0.51, 0.52])
    # ST-MBA's motion mean is 0.10 above, its std and the per-frame one sum to 0.02.
    st = with_tiers(sweep_result([0.2] * 3, [0.6] * 3, [1.0] * 3, 8.0), [0.60, 0.61, 0.62])
    near = with_tiers(sweep_result([0.2] * 3, [0.5] * 3, [1.0] * 3, 8.0), [0.50, 0.52, 0.54])
    lines = compare.tier_lines({"per_frame": base, "st_mba": st, "st_mba_prior": near})
    text = "\n".join(lines)
    assert "| arm | attribute (cIoU) | spatial (cIoU) | size (cIoU) | ordinal (cIoU) | " \
        "motion (J&F) |" in text
    assert "| st_mba | 0.500 ± 0.010 | 0.300 ± 0.010 | 0.300 ± 0.010 | 0.300 ± 0.010 | " \
        "0.610 ± 0.010 * |" in text
    assert "| st_mba_prior |" in text and "0.520 ± 0.020 |" in text and "0.520 ± 0.020 *" \
        not in text
    assert "| per_frame |" in text and " *" not in text.split("| per_frame |")[1].split("\n")[0]
    assert lines[-2] == "| yardstick: every object | 0.200 | 0.200 | 0.200 | 0.200 | 0.200 |"
    # Sweeps without tier scores (data without tiers.json): no table.
    assert compare.tier_lines({"per_frame": sweep_result([0.2] * 3, [0.5] * 3, [1.0] * 3,
                                                         8.0)}) == []


def test_compare_keeps_the_configs_schedule_unless_told():
    compare = load_tool("compare_st_mba")
    assert compare.parse_args(["--data-root", "D"]).epochs is None
    assert compare.parse_args(["--data-root", "D", "--epochs", "3"]).epochs == 3.0


def test_compare_arms_are_the_demo_recipe_with_one_mba_each():
    compare = load_tool("compare_st_mba")
    demo = load_config(compare.ARMS["per_frame"])
    for arm, path in compare.ARMS.items():
        cfg = load_config(path)
        assert cfg.train_dataloader == demo.train_dataloader, arm
        assert cfg.criterion == demo.criterion and cfg.max_epochs == demo.max_epochs, arm
        assert cfg.mba.type == ("MaskBiasedAttention" if arm == "per_frame"
                                else "SpatioTemporalMBA")


def test_bench_counts_saved_tensors_once():
    bench = load_tool("bench_st_mba")
    x = torch.randn(4, 8, requires_grad=True)
    w = torch.randn(8, 8, requires_grad=True)
    # x @ w saves x (128 B) and w (256 B); (x @ w).square() saves the product (128 B).
    assert bench.saved_bytes(lambda: (x @ w).square().sum()) == 4 * (32 + 64 + 32)
    with pytest.raises(SystemExit):
        bench.parse_args(["--size", "2b"])
