"""scripts/bench_inference.py: the plain predict loop and the runner path, tiny model and data."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_plain_loop_and_runner_path_report_images_and_frames(tmp_path):
    data = tmp_path / "data"
    subprocess.run([sys.executable, "scripts/make_synthetic_data.py", "--out", str(data),
                    "--seed", "0", "--train-images=1", "--val-images=1", "--test-images=1",
                    "--train-videos=1", "--val-videos=1", "--frames=3"], cwd=ROOT,
                   check=True, capture_output=True, timeout=300)
    out = tmp_path / "speed.json"
    proc = subprocess.run(
        [sys.executable, "scripts/bench_inference.py", "configs/tiny/sa2va_mba_tiny.py",
         "--data-root", str(data), "--images", "2", "--videos", "1", "--rounds", "2",
         "--answer", "It is [SEG].", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["checkpoint"] is None and report["load_s"] > 0
    assert report["image"]["samples"] == report["image"]["frames"] == 2 * 2  # x rounds
    runner = report["image_runner"]
    assert runner["rounds"] == 2 and runner["sentences"] == 2 and len(runner["seconds"]) == 2
    assert report["same_predictions"] is True
    assert report["image_ratio"] == (runner["frames_per_s"] / report["image"]["frames_per_s"])
    assert report["video"]["samples"] == 1 and report["video"]["frames"] == 3
    assert all(s > 0 for s in report["image"]["seconds"] + report["video"]["seconds"])
    assert "frames/s" in proc.stdout and "images/s" in proc.stdout
    assert "x the plain loop; same predictions: True" in proc.stdout
