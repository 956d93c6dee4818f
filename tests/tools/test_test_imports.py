"""tools/test.py --help and --eval-only never import the model stack.

Each run is a fresh interpreter that runs the tool as __main__ and then reports which
modules it imported (sys.modules, not timing): transformers, peft, sam2, deepspeed,
mpr_cma.models, and torch / mmengine / SciPy behind them, cost ~10 CPU-s of an
evaluation that needs none of them. --eval-only scores the hand-computed split of
tests/evaluation/test_refvos.py (J&F = 143/192), so the run is a real one.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mpr_cma.datasets.refvos_format import write_refvos_split
from tests.evaluation.test_refvos import (
    EXPECTED_JF,
    fixture_predictions,
    fixture_videos,
    write_png_predictions,
)

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "mmengine", "transformers", "peft", "sam2", "deepspeed", "scipy",
         "skimage", "mpr_cma.models")

CHILD = """
import json, runpy, sys
sys.argv = ['tools/test.py'] + json.loads(sys.argv[1])
code = 0
try:
    runpy.run_path('tools/test.py', run_name='__main__')
except SystemExit as exit:
    code = exit.code or 0
print(json.dumps({'code': code, 'imported': sorted(
    m for m in sys.modules if any(m == h or m.startswith(h + '.') for h in HEAVY_NAMES))}))
""".replace("HEAVY_NAMES", repr(list(HEAVY)))


def run_tool(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_help_imports_no_model_stack():
    out = run_tool(["--help"])
    assert out["code"] == 0
    assert out["imported"] == []


@pytest.mark.parametrize("dataset", ["mevis_u", "mevis"])
def test_eval_only_imports_no_model_stack(tmp_path, dataset):
    split = write_refvos_split(tmp_path / "valid_u", fixture_videos())
    pred = write_png_predictions(tmp_path / "pred", fixture_predictions())
    work = tmp_path / "work"
    out = run_tool(["--eval-only", "--dataset", dataset, "--gt", str(split), "--pred",
                    str(pred), "--work-dir", str(work), "--no-progress"])
    assert out["code"] == 0
    assert out["imported"] == []
    metrics = json.loads((work / "results.json").read_text())["metrics"]
    if dataset == "mevis_u":
        assert metrics["J&F"] == pytest.approx(EXPECTED_JF, abs=1e-12)
    else:  # packaged as the server's zip
        assert metrics["complete"] and Path(metrics["submission"]).is_file()


def test_the_check_sees_imports():
    """The child does report the model stack when the tool imports it (not vacuous)."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD.replace("runpy.run_path('tools/test.py', "
                                             "run_name='__main__')", "import torch"), "[]"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert "torch" in json.loads(proc.stdout.strip().splitlines()[-1])["imported"]
