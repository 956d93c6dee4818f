"""Shared pieces of the driver-script tests: load a script as a module, and write the
quick demo's small synthetic data root."""

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_script(name: str):
    """scripts/<name>.py as a module (scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_quick_data(out: Path) -> Path:
    """The data of `run_demo.py --quick` (its QUICK_DATA sizes), seed 0, at `out`."""
    sizes = load_script("run_demo").QUICK_DATA
    options = [f"--{k.replace('_', '-')}={v}" for k, v in sizes.items()]
    proc = subprocess.run([sys.executable, "scripts/make_synthetic_data.py", "--out", str(out),
                           "--seed", "0", *options], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out
