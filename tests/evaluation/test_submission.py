"""MeViS valid submission zip: layout, pixel values, completeness checks."""

import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from mpr_cma.datasets import RefVOSSplit, write_refvos_split
from mpr_cma.evaluation.refvos import PredictionError, open_predictions
from mpr_cma.evaluation.submission import (
    check_submission,
    encode_png,
    expected_entries,
    write_submission,
)
from tests.evaluation.test_refvos import (
    A,
    fixture_predictions,
    fixture_videos,
    write_png_predictions,
)


@pytest.fixture
def valid_split(tmp_path: Path) -> RefVOSSplit:
    # MeViS valid: meta_expressions and frames, no mask_dict.
    return RefVOSSplit(write_refvos_split(tmp_path / "valid", fixture_videos(), with_masks=False))


def test_encode_png_is_single_channel_0_255() -> None:
    arr = cv2.imdecode(np.frombuffer(encode_png(A), np.uint8), cv2.IMREAD_UNCHANGED)
    assert arr.dtype == np.uint8 and arr.shape == (10, 10)
    assert set(np.unique(arr)) == {0, 255}
    np.testing.assert_array_equal(arr == 255, A)


def test_write_submission_layout(valid_split: RefVOSSplit, tmp_path: Path) -> None:
    pred = write_png_predictions(tmp_path / "pred", fixture_predictions())
    report = write_submission(
        valid_split, open_predictions(pred), tmp_path / "sub.zip", progress=False
    )
    assert report["num_frames"] == 8 and report["num_expressions"] == 4
    with zipfile.ZipFile(tmp_path / "sub.zip") as zf:
        names = sorted(zf.namelist())
        assert names == sorted(expected_entries(valid_split))
        assert "v1/2/00001.png" in names
        arr = cv2.imdecode(np.frombuffer(zf.read("v1/2/00001.png"), np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(arr == 255, fixture_predictions()["v1"]["2"][1])
    assert check_submission(tmp_path / "sub.zip", valid_split, check_pixels=True)["complete"]


def test_missing_frame_fails_or_is_written_empty(valid_split: RefVOSSplit, tmp_path: Path) -> None:
    pred = write_png_predictions(tmp_path / "pred", fixture_predictions())
    (pred / "v2" / "0" / "00001.png").unlink()
    with pytest.raises(PredictionError, match="missing 1 frame masks.*--allow-missing"):
        write_submission(valid_split, open_predictions(pred), tmp_path / "s.zip", progress=False)
    assert not (tmp_path / "s.zip").exists()
    report = write_submission(
        valid_split, open_predictions(pred), tmp_path / "s.zip", allow_missing=True, progress=False
    )
    assert report["missing"]["frames"] == {"v2/0": ["00001"]}
    with zipfile.ZipFile(tmp_path / "s.zip") as zf:
        arr = cv2.imdecode(np.frombuffer(zf.read("v2/0/00001.png"), np.uint8), cv2.IMREAD_UNCHANGED)
    assert arr.shape == (8, 12) and not arr.any()


def test_check_submission_reports_missing_and_unexpected(
    valid_split: RefVOSSplit, tmp_path: Path
) -> None:
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name in expected_entries(valid_split)[1:]:
            zf.writestr(name, encode_png(np.zeros((10, 10), bool)))
        zf.writestr("v1/7/00000.png", encode_png(A))
    with pytest.raises(PredictionError, match=r"1 missing \(v1/0/00000.png\), 1 unexpected"):
        check_submission(path, valid_split)


def test_check_submission_pixels(valid_split: RefVOSSplit, tmp_path: Path) -> None:
    path = tmp_path / "grey.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name in expected_entries(valid_split):
            size = (10, 10) if name.startswith("v1") else (8, 12)
            zf.writestr(name, cv2.imencode(".png", np.full(size, 7, np.uint8))[1].tobytes())
    assert check_submission(path, valid_split)["complete"]  # names only by default
    with pytest.raises(PredictionError, match="values other than 0 and 255"):
        check_submission(path, valid_split, check_pixels=True)
