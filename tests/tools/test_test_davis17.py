"""tools/test.py --eval-only --dataset davis17 on a Ref-DAVIS17 split keyed the VISA way.

The split (tests/datasets/_ref_davis.py): 29 expressions in 4 videos, no anno_id in the
meta, mask_dict.pkl numbered as VISA wrote it. The predictions are each expression's own
object except two expressions predicted empty whose objects are on every frame, so by hand
J = F = 1 for 27 expressions and J = F = 0 for 2: J = F = J&F = 27/29 (x100: 93.10).
The natural-order numbering this tool used before scored 18 of the 29 against another
object.
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.datasets import _ref_davis as davis

REPO = Path(__file__).resolve().parents[2]
TEST_PY = REPO / "tools" / "test.py"
TRUTH = (davis.NUM_EXPRESSIONS - len(davis.EMPTY_PREDICTIONS)) / davis.NUM_EXPRESSIONS


@pytest.fixture(scope="module")
def test_tool():
    spec = importlib.util.spec_from_file_location("mpr_cma_tools_test_davis", TEST_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_scores(results: dict) -> None:
    m = results["metrics"]
    assert abs(TRUTH - 27 / 29) < 1e-15
    for key in ("J", "F", "J&F"):
        assert m[key] == pytest.approx(TRUTH, abs=1e-12), key
    assert m["num_expressions"] == davis.NUM_EXPRESSIONS and m["anno_id_rule"] == "sa2va"
    for video, (_, objects, _) in davis.VIDEOS.items():
        for exp_id in objects:
            want = 0.0 if (video, exp_id) in davis.EMPTY_PREDICTIONS else 1.0
            assert results["per_item"][f"{video}/{exp_id}"]["J"] == want, (video, exp_id)


def test_sa2va_folders_subprocess(tmp_path):
    files = davis.write_ref_davis(tmp_path / "data", "sa2va")
    pred = davis.write_predictions(tmp_path / "results.json")
    work = tmp_path / "work"
    proc = subprocess.run(
        [sys.executable, str(TEST_PY), "--eval-only", "--dataset", "davis17", "--gt",
         str(files["split"]), "--pred", str(pred), "--work-dir", str(work), "--no-progress"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((work / "results.json").read_text())
    check_scores(results)
    assert results["ground_truth"] == str(files["meta"])  # found in meta_expressions/valid/
    assert results["mask_dict"] == str(files["mask_dict"])
    assert "davis17 valid: J 93.10  F 93.10  J&F 93.10  (29 expressions" in proc.stdout
    assert "anno_id rule 'sa2va'" in proc.stderr


@pytest.mark.parametrize("how", ["meta_only", "gt_and_meta", "our_layout"])
def test_other_ways_to_name_the_split(tmp_path, test_tool, how):
    layout = "mpr_cma" if how == "our_layout" else "sa2va"
    files = davis.write_ref_davis(tmp_path / "data", layout)
    pred = davis.write_predictions(tmp_path / "results.json")
    where = {"meta_only": ["--meta", str(files["meta"])],
             "gt_and_meta": ["--gt", str(files["split"]), "--meta", str(files["meta"])],
             "our_layout": ["--gt", str(files["split"])]}[how]
    work = tmp_path / "work"
    code = test_tool.main(["--eval-only", "--dataset", "davis17", *where, "--pred", str(pred),
                           "--work-dir", str(work), "--no-progress"])
    assert code == 0
    check_scores(json.loads((work / "results.json").read_text()))


def test_file_rule_would_score_other_objects(tmp_path, test_tool):
    """With anno_ids written in natural order into the meta, "--anno-id-rule file" scores
    those (wrong for this pickle), while the davis17 default still follows Sa2VA."""
    files = davis.write_ref_davis(tmp_path / "data", "sa2va")
    meta = json.loads(files["meta"].read_text())
    for (video, exp_id), anno_id in davis.natural_numbering(meta["videos"]).items():
        meta["videos"][video]["expressions"][exp_id]["anno_id"] = [anno_id]
    files["meta"].write_text(json.dumps(meta))
    pred = davis.write_predictions(tmp_path / "results.json")
    base = ["--eval-only", "--dataset", "davis17", "--gt", str(files["split"]), "--pred",
            str(pred), "--no-progress"]
    assert test_tool.main([*base, "--work-dir", str(tmp_path / "w1")]) == 0
    check_scores(json.loads((tmp_path / "w1" / "results.json").read_text()))
    assert test_tool.main([*base, "--work-dir", str(tmp_path / "w2"), "--anno-id-rule",
                           "file"]) == 0
    wrong = json.loads((tmp_path / "w2" / "results.json").read_text())
    assert wrong["metrics"]["anno_id_rule"] == "file"
    assert wrong["metrics"]["J&F"] < TRUTH - 0.3
