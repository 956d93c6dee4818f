"""Corrupt annotation files: one CorruptFileError (a ValueError) whose one line names the file."""

import json
import pickle

import pytest

from mpr_cma.datasets import CorruptFileError, RefVOSSplit, load_refcoco, read_json, read_pickle
from mpr_cma.evaluation.refvos import RleJsonPredictions
from tests.datasets import _overlap_refcoco as ov
from tests.datasets import _ref_davis as davis


def truncate(path, keep: int = 25):
    path.write_bytes(path.read_bytes()[:keep])
    return path


def one_line_naming(err: pytest.ExceptionInfo, path, what: str) -> None:
    message = str(err.value)
    assert isinstance(err.value, ValueError) and "\n" not in message
    assert message.startswith(f"{path}: corrupt {what}"), message


def test_readers(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"a": [1]}))
    assert read_json(good) == {"a": [1]}
    with pytest.raises(FileNotFoundError, match="meta file not found: .*missing.json"):
        read_json(tmp_path / "missing.json", "meta file")
    with pytest.raises(CorruptFileError) as err:
        read_json(truncate(good, 5), "thing")
    one_line_naming(err, good, "thing, not valid JSON (truncated?) (JSONDecodeError:")
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(CorruptFileError, match="binary.json: corrupt"):
        read_json(binary)
    pkl = tmp_path / "x.pkl"
    pkl.write_bytes(pickle.dumps({"k": list(range(100))}))
    assert read_pickle(pkl)["k"][-1] == 99
    for keep in (0, 1, 10, 100):
        with pytest.raises(CorruptFileError) as err:
            read_pickle(truncate(pkl, keep), "mask_dict pickle")
        one_line_naming(err, pkl, "mask_dict pickle, cannot be unpickled")
        pkl.write_bytes(pickle.dumps({"k": list(range(100))}))


@pytest.mark.parametrize("name, what", [("instances.json", "instances file"),
                                        ("refs(unc).p", "refs pickle")])
def test_refcoco_files(tmp_path, name, what):
    root = ov.write_overlap_root(tmp_path)
    path = truncate(root / "refcoco" / name, 60)
    with pytest.raises(CorruptFileError) as err:
        load_refcoco(root, "refcoco", split="val")
    one_line_naming(err, path, what)


@pytest.mark.parametrize("which", ["meta", "mask_dict_pkl", "mask_dict_json", "results"])
def test_refvos_files(tmp_path, which):
    files = davis.write_ref_davis(tmp_path, "sa2va", videos=["car-shadow"])
    if which == "mask_dict_json":
        files["mask_dict"].unlink()
        files["mask_dict"] = files["split"] / "mask_dict.json"
        files["mask_dict"].write_text(json.dumps({"0": [None, None], "1": [None, None]}))
    if which == "meta":
        with pytest.raises(CorruptFileError) as err:
            RefVOSSplit(files["split"], meta_file=truncate(files["meta"]))
        one_line_naming(err, files["meta"], "meta expressions file")
    elif which == "results":
        pred = truncate(davis.write_predictions(tmp_path / "results.json"), 100)
        with pytest.raises(CorruptFileError) as err:
            RleJsonPredictions(pred)
        one_line_naming(err, pred, "predictions file (Sa2VA results.json)")
    else:
        split = RefVOSSplit(files["split"])
        truncate(files["mask_dict"], 20)
        with pytest.raises(CorruptFileError) as err:
            split.expression_masks("car-shadow", "0")
        kind = "mask_dict pickle" if which == "mask_dict_pkl" else "mask_dict file"
        one_line_naming(err, files["mask_dict"], kind)
