"""scripts/bench_inference.py: the plain predict loop on a tiny model and data root."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_plain_loop_reports_images_and_frames(tmp_path):
    data = tmp_path / "data"
    subprocess.run([sys.executable, "scripts/make_synthetic_data.py", "--out", str(data),
                    "--seed", "0", "--train-images=1", "--val-images=1", "--test-images=1",
                    "--train-videos=1", "--val-videos=1", "--frames=3"], cwd=ROOT,
                   check=True, capture_output=True, timeout=300)
    out = tmp_path / "speed.json"
    proc = subprocess.run(
        [sys.executable, "scripts/bench_inference.py", "configs/tiny/sa2va_mba_tiny.py",
         "--data-root", str(data), "--images", "2", "--videos", "1",
         "--answer", "It is [SEG].", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["checkpoint"] is None and report["load_s"] > 0
    assert report["image"]["samples"] == report["image"]["frames"] == 2
    assert report["video"]["samples"] == 1 and report["video"]["frames"] == 3
    assert all(s > 0 for s in report["image"]["seconds"] + report["video"]["seconds"])
    assert "frames/s" in proc.stdout and "images/s" in proc.stdout
