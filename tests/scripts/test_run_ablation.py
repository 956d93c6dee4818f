"""scripts/run_ablation.py: its rows are the 1B ablation configs' rows; the schedule
rescales; a small sweep writes the table as markdown, CSV and JSON."""

import csv
import json
import subprocess
import sys
from argparse import Namespace

import pytest

from mpr_cma.engine.config import load_config
from tests.scripts._drivers import ROOT, load_script, make_quick_data

ABLATION_CONFIGS = {"baseline": "sa2va_1b_baseline.py", "mba": "mba_only_1b.py",
                    "mba_tmc": "mba_tmc_1b.py", "mba_tmc_bound": "mba_tmc_bound_1b.py",
                    "mba_film": "mba_film_1b.py"}


def test_rows_equal_the_1b_ablation_configs(tmp_path):
    ablation = load_script("run_ablation")
    assert set(ablation.ROWS) == set(ABLATION_CONFIGS)
    args = Namespace(out=tmp_path, config=ROOT / "configs/mba_1b.py", epochs=None,
                     rows=list(ablation.ROWS))
    for row, path in ablation.write_row_configs(args).items():
        written = load_config(path).model.to_dict()
        reference = load_config(ROOT / "configs/ablations" / ABLATION_CONFIGS[row])
        assert written == reference.model.to_dict(), row


def test_schedule_is_rescaled_to_the_requested_epochs(tmp_path):
    ablation = load_script("run_ablation")
    args = Namespace(out=tmp_path, config=ROOT / "configs/tiny/demo.py", epochs=2.0,
                     rows=["mba"])
    cfg = load_config(ablation.write_row_configs(args)["mba"])
    base = load_config(ROOT / "configs/tiny/demo.py")
    assert cfg.train_cfg.max_epochs == 2.0
    scale = 2.0 / base.train_cfg.max_epochs
    for new, old in zip(cfg.param_scheduler, base.param_scheduler, strict=True):
        assert new["begin"] == pytest.approx(old["begin"] * scale)
        assert new["end"] == pytest.approx(old["end"] * scale)
        assert new["type"] == old["type"] and new["by_epoch"]
    assert cfg.custom_hooks[0]["mba_warmup_ratio"] == base.custom_hooks[0]["mba_warmup_ratio"]
    # A config whose loop does not read max_epochs cannot be rescaled.
    fixed = tmp_path / "fixed.py"
    fixed.write_text("max_epochs = 1\ntrain_cfg = dict(type='IterBasedTrainLoop', "
                     "max_iters=10)\n")
    with pytest.raises(ValueError, match="max_epochs"):
        ablation.rescaled_schedule(fixed, 2)


def test_small_sweep_writes_the_table(tmp_path):
    data = make_quick_data(tmp_path / "data")
    out = tmp_path / "ablation"
    # 6 epochs of this 4-iteration epoch: the rescaled 5% warm-up must span >= 1 iteration.
    command = [sys.executable, "scripts/run_ablation.py", "--config", "configs/tiny/demo.py",
               "--data-root", str(data), "--rows", "baseline", "mba_tmc_bound", "--seeds",
               "0", "--epochs", "6", "--bench-repeats", "1", "--out", str(out)]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = (out / "ablation.md").read_text()
    assert "Sa2VA baseline" in table and "+ MBA + TMC + Bound" in table
    assert "every object" in table
    assert "Per tier" in table and "right shape, any instance" in table  # tiers.json
    with (out / "ablation.csv").open() as f:
        rows = list(csv.DictReader(f))
    ciou = {r["row"]: float(r["mean"]) for r in rows if r["metric"] == "cIoU"}
    assert set(ciou) == {"baseline", "mba_tmc_bound", "every_object"}
    report = json.loads((out / "ablation.json").read_text())
    assert report["table"]["mba_tmc_bound"]["trainable"] > report["table"]["baseline"][
        "trainable"]
    assert all(r["step_seconds"] > 0 for r in report["runs"])
    assert all(0.0 <= v <= 1.0 for r in report["runs"] for v in r["tiers"].values())
    # A second call reuses the finished runs instead of training again.
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "dist_train" not in again.stdout and "bench_train" not in again.stdout


def test_finished_runs_of_other_settings_are_refused(tmp_path):
    ablation = load_script("run_ablation")
    done = tmp_path / "run.json"
    assert ablation.reuse(done, "abc") is None
    done.write_text(json.dumps({"fingerprint": "abc", "seed": 0}))
    assert ablation.reuse(done, "abc")["seed"] == 0
    with pytest.raises(SystemExit, match="another config"):
        ablation.reuse(done, "other")
    demo = ROOT / "configs/tiny/demo.py"
    assert ablation.fingerprint(demo, tmp_path) == ablation.fingerprint(demo, tmp_path)
    assert ablation.fingerprint(demo, tmp_path) != ablation.fingerprint(demo, tmp_path / "x")


def test_tier_table_marks_differences_beyond_the_seed_spread():
    ablation = load_script("run_ablation")
    table = {"baseline": {"title": "base", "tiers": {"attribute": (0.30, 0.02),
                                                     "motion": (0.40, 0.05)}},
             "mba": {"title": "mba", "tiers": {"attribute": (0.40, 0.03),
                                               "motion": (0.45, 0.05)}}}
    yard = {"every_object": {"attribute": 0.24, "motion": 0.45},
            "right_shape": {"attribute": 0.52, "motion": 0.70}}
    lines = ablation.tier_lines(table, yard)
    mba = next(line for line in lines if line.startswith("| mba"))
    assert "0.400 ± 0.030 *" in mba           # 0.10 > 0.02 + 0.03
    assert "0.450 ± 0.050 |" in mba           # 0.05 < 0.05 + 0.05: within the spread
    assert any("right shape, any instance | 0.520 | 0.700" in line for line in lines)
