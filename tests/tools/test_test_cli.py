"""tools/test.py --eval-only on a split written in the real MeViS layout.

The split and predictions are those of tests/evaluation/test_refvos.py, whose docstring
derives the expected scores by hand: J = 17/24, F = 25/32, J&F = 143/192 (x100: 70.83,
78.12, 74.48). Each subprocess run costs ~3 s (importing mmengine/torch), so the happy paths
and one failure run as subprocesses and the bad-input matrix calls main() in-process.
"""

import hashlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mpr_cma.datasets import write_refvos_split
from tests.evaluation.test_refvos import (
    EXPECTED_F,
    EXPECTED_J,
    EXPECTED_JF,
    fixture_predictions,
    fixture_videos,
    write_json_predictions,
    write_png_predictions,
)

REPO = Path(__file__).resolve().parents[2]
TEST_PY = REPO / "tools" / "test.py"
RESULT_FIELDS = {
    "dataset",
    "split",
    "metrics",
    "per_item",
    "config",
    "checkpoint",
    "checkpoint_sha256",
}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TEST_PY), *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def test_tool():
    spec = importlib.util.spec_from_file_location("mpr_cma_tools_test", TEST_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Path]:
    mevis = tmp_path / "data" / "mevis"
    return {
        "gt": write_refvos_split(mevis / "valid_u", fixture_videos()),
        "valid": write_refvos_split(mevis / "valid", fixture_videos(), with_masks=False),
        "pred": write_png_predictions(tmp_path / "pred", fixture_predictions()),
        "work": tmp_path / "work",
    }


def test_png_folder_scores_hand_computed_value(data: dict[str, Path]) -> None:
    proc = run_cli(
        "--eval-only",
        "--dataset",
        "mevis_u",
        "--gt",
        str(data["gt"]),
        "--pred",
        str(data["pred"]),
        "--work-dir",
        str(data["work"]),
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads((data["work"] / "results.json").read_text())
    assert set(results) >= RESULT_FIELDS
    assert (results["dataset"], results["split"]) == ("mevis_u", "valid_u")
    assert results["config"] is None and results["checkpoint"] == str(data["pred"])
    assert results["checkpoint_sha256"] is None  # a folder has no single file to hash
    m = results["metrics"]
    assert m["J"] == pytest.approx(EXPECTED_J, abs=1e-12)
    assert m["F"] == pytest.approx(EXPECTED_F, abs=1e-12)
    assert m["J&F"] == pytest.approx(EXPECTED_JF, abs=1e-12)
    assert m["num_expressions"] == 4 and m["missing_frames"] == 0
    assert results["per_item"]["v1/2"]["J"] == pytest.approx(1 / 3)
    assert {"load_ground_truth", "open_predictions", "score", "total"} <= set(results["timings"])
    # The printed table: the paper's Table 1 row (x100) and the J / F detail line.
    assert "| Method | RefCOCO val/testA/testB |" in proc.stdout
    assert "| pred | - / - / - | - / - / - | - / - | - | 74.5 |" in proc.stdout
    assert "mevis_u valid_u: J 70.83  F 78.12  J&F 74.48  (4 expressions" in proc.stdout
    assert "stage score" in (data["work"] / "test.log").read_text()


def test_sa2va_json_with_sha256(data: dict[str, Path], tmp_path: Path) -> None:
    pred = write_json_predictions(tmp_path / "results_sa2va.json", fixture_predictions())
    # The fixture's mask_dict is keyed by the file's anno_ids (MeViS style); davis17 would
    # number the expressions Sa2VA's way (tests/tools/test_test_davis17.py), so say "file".
    proc = run_cli(
        "--eval-only",
        "--dataset",
        "davis17",
        "--anno-id-rule",
        "file",
        "--gt",
        str(data["gt"]),
        "--pred",
        str(pred),
        "--work-dir",
        str(data["work"]),
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads((data["work"] / "results.json").read_text())
    assert results["checkpoint_sha256"] == hashlib.sha256(pred.read_bytes()).hexdigest()
    assert results["split"] == "valid"
    assert results["metrics"]["J&F"] == pytest.approx(EXPECTED_JF, abs=1e-12)
    assert results["metrics"]["anno_id_rule"] == "file"
    assert "not the ReferFormer annotator average" in results["metrics"]["protocol_note"]


def test_missing_frame_subprocess_error(data: dict[str, Path]) -> None:
    (data["pred"] / "v1" / "0" / "00001.png").unlink()
    proc = run_cli(
        "--eval-only",
        "--dataset",
        "mevis_u",
        "--gt",
        str(data["gt"]),
        "--pred",
        str(data["pred"]),
        "--work-dir",
        str(data["work"]),
    )
    assert proc.returncode == 1
    assert "ERROR" in proc.stderr and "v1/0: 00001" in proc.stderr
    assert "--allow-missing" in proc.stderr
    assert not (data["work"] / "results.json").exists()


def test_model_path_names_a_missing_checkpoint() -> None:
    proc = run_cli("configs/mba_1b.py", "--checkpoint", "x.pth", "--dataset", "mevis_u")
    assert proc.returncode == 1
    assert "checkpoint not found: x.pth" in proc.stderr


def _break(pred: Path, what: str) -> None:
    if what == "missing_frame":
        (pred / "v1" / "0" / "00001.png").unlink()
    elif what == "missing_video":
        for f in sorted((pred / "v2").rglob("*"), reverse=True):
            f.rmdir() if f.is_dir() else f.unlink()
        (pred / "v2").rmdir()
    elif what == "empty_folder":
        for f in sorted(pred.rglob("*"), reverse=True):
            f.rmdir() if f.is_dir() else f.unlink()
    elif what == "size_mismatch":
        Image.fromarray(np.zeros((9, 10), np.uint8)).save(pred / "v1" / "1" / "00000.png")
    elif what == "unknown_expression":
        write_png_predictions(pred, {"v1": {"7": [np.zeros((10, 10), bool)] * 2}})


# (error text without --allow-missing, J&F with it or None if it must still fail).
# J&F with --allow-missing, from the hand-computed per-expression (J, F) of test_refvos.py:
#   missing_frame: v1/0 -> (0.5, 0.5): J = (0.5 + 0.5 + 1/3 + 1) / 4, F = (0.5+0.5+0.625+1) / 4
#   missing_video: v2/0 -> (0, 0):     J = (1 + 0.5 + 1/3) / 4,     F = (1 + 0.5 + 0.625) / 4
#   empty_folder: only v1/1 frame 1 (both empty) scores 1 -> J = F = 0.5 / 4
BAD_INPUT = {
    "missing_frame": ("missing 1 frame masks", ((7 / 3) / 4 + 2.625 / 4) / 2),
    "missing_video": ("missing 2 frame masks.*1 videos \\(v2\\)", ((11 / 6) / 4 + 2.125 / 4) / 2),
    "empty_folder": ("no predictions found", 0.5 / 4),
    "size_mismatch": ("v1/1 frame '00000' has size \\(9, 10\\)", None),
    "unknown_expression": ("not in .*meta_expressions.json: v1/7", None),
}


@pytest.mark.parametrize("allow_missing", [False, True], ids=["strict", "allow_missing"])
@pytest.mark.parametrize("what", list(BAD_INPUT))
def test_bad_input(
    test_tool, data: dict[str, Path], capsys, what: str, allow_missing: bool
) -> None:
    _break(data["pred"], what)
    argv = [
        "--eval-only",
        "--dataset",
        "mevis_u",
        "--gt",
        str(data["gt"]),
        "--pred",
        str(data["pred"]),
        "--work-dir",
        str(data["work"]),
        "--no-progress",
    ]
    message, expected_jf = BAD_INPUT[what]
    code = test_tool.main(argv + (["--allow-missing"] if allow_missing else []))
    if allow_missing and expected_jf is not None:
        assert code == 0
        results = json.loads((data["work"] / "results.json").read_text())
        assert results["metrics"]["J&F"] == pytest.approx(expected_jf, abs=1e-12)
        assert results["metrics"]["missing_frames"] > 0 and results["allow_missing"]
        assert "missing frame masks scored empty" in capsys.readouterr().out
    else:
        assert code == 1
        assert re.search(message, capsys.readouterr().err)
        assert not (data["work"] / "results.json").exists()


def test_mevis_valid_submission(test_tool, data: dict[str, Path], capsys) -> None:
    argv = [
        "--eval-only",
        "--dataset",
        "mevis",
        "--gt",
        str(data["valid"]),
        "--pred",
        str(data["pred"]),
        "--work-dir",
        str(data["work"]),
        "--no-progress",
    ]
    assert test_tool.main(argv) == 0
    results = json.loads((data["work"] / "results.json").read_text())
    assert results["metrics"]["complete"] and results["metrics"]["num_frames"] == 8
    assert (data["work"] / "submission.zip").is_file()
    assert "submission" in capsys.readouterr().out


def test_default_work_dirs_name_config_and_checkpoint(test_tool) -> None:
    def work_dir(*args: str) -> Path:
        return test_tool.parse_args(["configs/mba_1b.py", "--dataset", "refcoco", *args]).work_dir

    a = work_dir("--checkpoint", "runs/a/iter_2000.pth")
    b = work_dir("--checkpoint", "runs/b/iter_2000.pth")   # same name, another run
    assert a != b and a.name == b.name == "refcoco_val"
    assert a.parent.name.startswith("mba_1b__iter_2000.pth-")
    assert work_dir("--checkpoint", "runs/a/iter_2000.pth") == a   # deterministic
    assert work_dir("--checkpoint", "runs/a/iter_2000.pth", "--cfg-options", "mba=None") != a
    assert work_dir("--checkpoint", "runs/a/iter_2000.pth", "--answer", "It is [SEG].") != a
    assert work_dir("--random-init").parent.name.startswith("mba_1b__random-init-")
    other = test_tool.parse_args(["configs/ablations/mba_tmc_1b.py", "--dataset", "refcoco",
                                  "--checkpoint", "runs/a/iter_2000.pth"]).work_dir
    assert other != a
    pred = test_tool.parse_args(["--eval-only", "--dataset", "mevis_u", "--gt", "g",
                                 "--pred", "p1"]).work_dir
    assert pred.parent.name.startswith("eval-only__p1-") and pred.name == "mevis_u_valid_u"


def test_cfg_options_reach_the_evaluated_model() -> None:
    from mpr_cma.engine.evaluate import build_eval_model

    model, _ = build_eval_model(REPO / "configs/tiny/sa2va_mba_tiny.py", None,
                                cfg_options={"mba": None, "criterion.tmc_weight": 0.0})
    assert model.grounding.mba is None and model.criterion.tmc_weight == 0.0


def test_num_key_frames_defaults_to_the_config(test_tool, tmp_path) -> None:
    """--num-key-frames: the flag, else the config's `num_key_frames` (with --cfg-options),
    else Sa2VA's 5 for a config without the field; the value names the work dir."""
    leaf = tmp_path / "leaf.py"
    leaf.write_text(f"_base_ = [{str(REPO / 'configs/tiny/demo.py')!r}]\nnum_key_frames = 3\n")

    def frames(config, *args: str):
        parsed = test_tool.parse_args([str(config), "--dataset", "mevis_u", "--random-init",
                                       *args])
        return parsed.num_key_frames, parsed.work_dir

    assert frames(REPO / "configs/mba_1b.py")[0] == 5          # default_runtime.py: Sa2VA's
    assert frames(REPO / "configs/tiny/sa2va_mba_tiny.py")[0] == 5   # no field: Sa2VA's
    three, dir3 = frames(leaf)
    assert three == 3
    assert frames(leaf, "--cfg-options", "num_key_frames=4")[0] == 4
    two, dir2 = frames(leaf, "--num-key-frames", "2")
    assert two == 2 and dir2 != dir3
    for bad in (("--cfg-options", "num_key_frames=0"), ("--cfg-options", "num_key_frames=True"),
                ("--num-key-frames", "0")):
        with pytest.raises(SystemExit) as exc:
            frames(leaf, *bad)
        assert exc.value.code == 2
