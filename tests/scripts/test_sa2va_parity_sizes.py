"""scripts/sa2va_parity_sizes.py runs and reports every measurement (a smoke test)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_reports_every_measurement(capsys):
    spec = importlib.util.spec_from_file_location(
        "sa2va_parity_sizes", ROOT / "scripts" / "sa2va_parity_sizes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--size", "64"])
    # DeepSpeed (imported with the config loader) may log its accelerator line to stdout
    lines = [line for line in capsys.readouterr().out.splitlines()
             if not line.startswith("[")]
    assert lines[0] == "image 427x640 -> 64x64"
    assert [line.split(",")[0] for line in lines[1:]] == [
        "resize", "SAM-2 input", "normalisation", "normalisation", "mask", "tiny model",
        "tiny model"]
