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
