"""scripts/bench_train.py runs and reports both configs (a smoke test, no timing asserted)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_train_reports_baseline_and_mba(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "scripts/bench_train.py", "configs/tiny/sa2va_mba_tiny.py",
         "--baseline", "configs/tiny/sa2va_baseline_tiny.py", "--repeats", "1",
         "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"baseline", "model"}
    base, model = report["results"]["baseline"], report["results"]["model"]
    assert model["trainable"] > base["trainable"]  # MBA, TMC heads, text_token_fcs
    assert all(r["step_seconds"] > 0 and r["activation_bytes"] > 0 for r in (base, model))
    assert set(report["ratios"]) >= {"step_seconds", "activation_bytes", "state_bytes"}


def test_share_weights_makes_the_baseline_use_the_model_tensors(tmp_path):
    from mpr_cma.registry import MODELS  # noqa: F401  (registers the models)
    from scripts.bench_train import build, share_parameters

    model = build("configs/tiny/sa2va_mba_tiny.py", "cpu")
    baseline = build("configs/tiny/sa2va_baseline_tiny.py", "cpu")
    own = dict(model.named_parameters())
    common = [n for n, p in baseline.named_parameters() if n in own and own[n].shape == p.shape]
    assert common and share_parameters(baseline, model) == len(common)
    shared = dict(baseline.named_parameters())
    assert all(shared[n] is own[n] for n in common)
    assert "mllm.mlp1.1.weight" in common and not any("mba" in n for n in common)


def test_bench_train_share_weights_runs(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "scripts/bench_train.py", "configs/tiny/sa2va_mba_tiny.py",
         "--baseline", "configs/tiny/sa2va_baseline_tiny.py", "--repeats", "1",
         "--warmup", "1", "--share-weights", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["shared_weights"] is True and report["batch"]["warmup"] == 1
    assert all(len(r) for r in report["results"].values())
