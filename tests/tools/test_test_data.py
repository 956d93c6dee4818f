"""tools/test.py on Sa2VA's folders as they are, and on corrupt annotation files.

Inference runs use the tiny model with --random-init and a teacher-forced answer (the
scores are not the point: which files are read, and that the run completes or fails with
one line naming the file). Corrupt files: each is truncated and must give exit status 1
and one ERROR line naming it, without a traceback.
"""

import json
import pickle

import pytest

from tests.datasets import _overlap_refcoco as ov
from tests.datasets import _ref_davis as davis
from tests.datasets.test_layouts import GLAMM, to_sa2va_refcoco
from tests.tools.test_test_cli import REPO, test_tool  # noqa: F401

CONFIG = str(REPO / "configs" / "tiny" / "sa2va_mba_tiny.py")
SMOKE = [CONFIG, "--random-init", "--answer", "It is [SEG].", "--no-progress"]


def truncate(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * keep))])


def error_lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return [line for line in err.splitlines() if " ERROR " in line]


@pytest.mark.slow
def test_inference_on_sa2va_folders(tmp_path, test_tool):  # noqa: F811
    data = ov.write_overlap_root(tmp_path / "data")
    to_sa2va_refcoco(data)
    davis.write_ref_davis(data, "sa2va", videos=["car-shadow"])
    work = tmp_path / "refcoco"
    assert test_tool.main([*SMOKE, "--dataset", "refcoco", "--data-root", str(data),
                           "--work-dir", str(work), "--gt-rule", "sa2va"]) == 0
    results = json.loads((work / "results.json").read_text())
    assert results["metrics"]["gt_rule"] == "sa2va" and results["metrics"]["num_items"] == 4
    work = tmp_path / "davis"
    assert test_tool.main([*SMOKE, "--dataset", "davis17", "--data-root", str(data),
                           "--work-dir", str(work)]) == 0
    results = json.loads((work / "results.json").read_text())
    assert results["metrics"]["anno_id_rule"] == "sa2va"
    assert results["metrics"]["num_expressions"] == 2
    assert (data / GLAMM).is_dir() and not (data / "davis17").exists()


def test_forced_layout_names_the_missing_files(tmp_path, test_tool, capsys):  # noqa: F811
    data = ov.write_overlap_root(tmp_path / "data")
    assert test_tool.main([*SMOKE, "--dataset", "refcoco", "--data-root", str(data),
                           "--work-dir", str(tmp_path / "w"), "--data-layout", "sa2va"]) == 1
    lines = error_lines(capsys)
    assert len(lines) == 1 and "ref_seg/refcoco/instances.json" in lines[0]
    assert test_tool.main([*SMOKE, "--dataset", "davis17", "--data-root", str(data),
                           "--work-dir", str(tmp_path / "w")]) == 1
    lines = error_lines(capsys)
    assert "davis17/valid/meta_expressions.json" in lines[0]
    assert "nor in Sa2VA's layout" in lines[0] and "video_datas/davis17" in lines[0]


@pytest.mark.parametrize("name", ["refs(unc).p", "instances.json"])
def test_corrupt_refcoco_files_in_inference(tmp_path, test_tool, capsys, name):  # noqa: F811
    data = ov.write_overlap_root(tmp_path / "data")
    path = data / "refcoco" / name
    truncate(path)
    assert test_tool.main([*SMOKE, "--dataset", "refcoco", "--data-root", str(data),
                           "--work-dir", str(tmp_path / "w")]) == 1
    lines = error_lines(capsys)
    assert any(str(path) in line and "corrupt" in line for line in lines), lines


@pytest.mark.parametrize("what", ["meta", "mask_dict_pkl", "mask_dict_json", "results"])
def test_corrupt_files_in_eval_only(tmp_path, test_tool, capsys, what):  # noqa: F811
    files = davis.write_ref_davis(tmp_path / "data", "sa2va")
    pred = davis.write_predictions(tmp_path / "results.json")
    if what == "mask_dict_json":  # the same ground truth as JSON (str counts)
        masks = pickle.loads(files["mask_dict"].read_bytes())
        for per_frame in masks.values():
            for rle in per_frame:
                if rle is not None:
                    rle["counts"] = rle["counts"].decode()
        files["mask_dict"].unlink()
        files["mask_dict"] = files["split"] / "mask_dict.json"
        files["mask_dict"].write_text(json.dumps(masks))
    path = {"meta": files["meta"], "results": pred}.get(what, files["mask_dict"])
    truncate(path)
    code = test_tool.main(["--eval-only", "--dataset", "davis17", "--gt", str(files["split"]),
                           "--pred", str(pred), "--work-dir", str(tmp_path / "w"),
                           "--no-progress"])
    assert code == 1
    lines = error_lines(capsys)
    assert len(lines) == 1 and str(path) in lines[0] and "corrupt" in lines[0], lines
    assert not (tmp_path / "w" / "results.json").exists()
