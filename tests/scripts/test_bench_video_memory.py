"""scripts/bench_video_memory.py on the tiny config: one row per (T, encoding) that runs,
batched rows above --max-batched-frames skipped, config overrides applied."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_rows_per_frames_and_encoding(tmp_path):
    out = tmp_path / "video.json"
    proc = subprocess.run(
        [sys.executable, "scripts/bench_video_memory.py", "configs/tiny/sa2va_mba_tiny.py",
         "--frames", "2", "6", "--max-batched-frames", "2", "--size", "64",
         "--cfg-options", "mba.top_k=2", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["options"] == ["mba.top_k=2"]
    assert [(r["frames"], r["encoding"]) for r in report["rows"]] == [
        (2, "lazy"), (2, "batched"), (6, "lazy")]
    assert all(r["seconds"] > 0 and r["peak_above_model_bytes"] >= 0 for r in report["rows"])
