"""Shared pieces of the driver-script tests: load a script as a module, and a small
synthetic data root (the quick demo's sizes) generated once per test session."""

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QUICK_SIZES = ["--train-images", "12", "--val-images", "4", "--test-images", "2",
               "--train-videos", "4", "--val-videos", "2", "--frames", "4"]


def load_script(name: str):
    """scripts/<name>.py as a module (scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_quick_data(out: Path) -> Path:
    proc = subprocess.run([sys.executable, "scripts/make_synthetic_data.py", "--out", str(out),
                           "--seed", "0", *QUICK_SIZES], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out
