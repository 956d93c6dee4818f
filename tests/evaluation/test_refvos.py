"""Referring-video format reader/writer and RefVOS scoring against hand-computed J / F.

The fixture (also used by test_submission.py and tests/tools/test_test_cli.py) is a tiny
split in the real MeViS layout. Frames are 10x10 (v1) and 8x12 (v2), so the boundary
tolerance is ceil(0.008 * diagonal) = ceil(0.008 * 14.1) = 1 pixel: a boundary pixel is
matched if the other boundary has a pixel at it or at one of its 4 neighbours.

Square A = rows 2-5, cols 2-5 (16 px). Its boundary map (a pixel whose 2x2 block
y..y+1, x..x+1 is not constant) is the ring of rows 1-5 x cols 1-5 minus rows 2-4 x cols
2-4: 25 - 9 = 16 pixels. Square B = A shifted right by 2 (cols 4-7), ring rows 1-5 x cols
3-7.

* v1/0: gt A on both frames, pred A: J = F = 1.
* v1/1: gt A then nothing (null RLE), pred A on both frames. Frame 0: J = F = 1. Frame 1:
  gt empty, pred not: J = 0; the gt boundary is empty so P = 0, R = 1 ... F = 0.
  Expression: J = 0.5, F = 0.5.
* v1/2: gt A, pred B on both frames. J = |A & B| / |A | B| = (4 rows x 2 cols) / (4 x 6)
  = 8 / 24 = 1/3. F: of A's 16 boundary pixels, the left column (x = 1, rows 1-5, 5 px)
  has no B-boundary pixel within 1 (B's ring starts at x = 3), and (3, 5) (middle of A's
  right column) only has B's interior around it; the other 10 are matched (top/bottom rows
  touch B's top/bottom rows, (2, 5) and (4, 5) touch B's top and bottom rows). Recall =
  10 / 16, and by symmetry precision = 10 / 16, so F = 0.625.
* v2/0: gt = union of anno 2 (C) and anno 3 (D), pred C | D: J = F = 1.

Benchmark: J = (1 + 0.5 + 1/3 + 1) / 4 = 17/24, F = (1 + 0.5 + 0.625 + 1) / 4 = 25/32,
J&F = (17/24 + 25/32) / 2 = 143/192.
"""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mpr_cma.datasets import RefVOSSplit, decode_rle, encode_mask, write_refvos_split
from mpr_cma.evaluation.refvos import (
    PngPredictions,
    PredictionError,
    RleJsonPredictions,
    evaluate_predictions,
    open_predictions,
)

EXPECTED_J = 17 / 24
EXPECTED_F = 25 / 32
EXPECTED_JF = 143 / 192


def box(shape: tuple[int, int], rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """bool mask with rows[0]..rows[1] x cols[0]..cols[1] (inclusive) set."""
    mask = np.zeros(shape, dtype=bool)
    mask[rows[0] : rows[1] + 1, cols[0] : cols[1] + 1] = True
    return mask


A = box((10, 10), (2, 5), (2, 5))
B = box((10, 10), (2, 5), (4, 7))
C = box((8, 12), (1, 3), (1, 3))
D = box((8, 12), (4, 6), (7, 10))


def fixture_videos() -> dict:
    """The split of the module docstring, as write_refvos_split input."""
    return {
        "v1": {
            "frames": ["00000", "00001"],
            "masks": {0: [A, A], 1: [A, None]},
            "expressions": {
                "0": {"exp": "the square", "anno_id": [0]},
                "1": {"exp": "the square that leaves", "anno_id": [1]},
                "2": {"exp": "the square again", "anno_id": [0]},
            },
        },
        "v2": {
            "frames": ["00000", "00001"],
            "masks": {2: [C, C], 3: [D, D]},
            "expressions": {"0": {"exp": "both boxes", "anno_id": [2, 3]}},
        },
    }


def fixture_predictions() -> dict[str, dict[str, list[np.ndarray]]]:
    """{video: {exp_id: [mask per frame]}} giving the hand-computed scores."""
    return {"v1": {"0": [A, A], "1": [A, A], "2": [B, B]}, "v2": {"0": [C | D, C | D]}}


def write_png_predictions(root: Path, preds: dict) -> Path:
    """Write PRED/<video>/<exp_id>/<frame>.png (0/255) for `preds` (frames 00000, ...)."""
    for video, exps in preds.items():
        for exp_id, masks in exps.items():
            folder = root / video / exp_id
            folder.mkdir(parents=True, exist_ok=True)
            for t, mask in enumerate(masks):
                Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"{t:05d}.png")
    return root


def write_json_predictions(path: Path, preds: dict) -> Path:
    """Write Sa2VA ref_vos_eval.py's results.json layout for `preds`."""
    out = {
        video: {
            exp_id: {
                "video_id": video,
                "exp_id": exp_id,
                "frames": [f"{t:05d}" for t in range(len(masks))],
                "prediction_masks": [encode_mask(m) for m in masks],
            }
            for exp_id, masks in exps.items()
        }
        for video, exps in preds.items()
    }
    path.write_text(json.dumps(out))
    return path


@pytest.fixture
def split_root(tmp_path: Path) -> Path:
    return write_refvos_split(tmp_path / "valid_u", fixture_videos())


# ------------------------------------------------------------------------------ format


def test_reader_round_trip_and_union(split_root: Path) -> None:
    split = RefVOSSplit(split_root)
    assert split.has_masks and len(split) == 4
    assert split.frames("v1") == ["00000", "00001"]
    assert split.frame_size("v2") == (8, 12)
    np.testing.assert_array_equal(split.expression_masks("v1", "1"), np.stack([A, 0 * A]))
    np.testing.assert_array_equal(split.expression_masks("v2", "0"), np.stack([C | D] * 2))
    assert split.frame_path("v1", "00001").is_file()


def test_pickle_mask_dict(tmp_path: Path) -> None:
    root = write_refvos_split(tmp_path / "s", fixture_videos(), mask_format="pkl")
    split = RefVOSSplit(root)
    assert split.mask_file.name == "mask_dict.pkl"
    np.testing.assert_array_equal(split.expression_masks("v1", "0")[0], A)


def test_missing_anno_ids_are_assigned_deterministically(tmp_path: Path) -> None:
    videos = fixture_videos()
    root = write_refvos_split(tmp_path / "s", videos, write_anno_ids=False, with_masks=False)
    split = RefVOSSplit(root)
    # No anno_id in the file: Sa2VA's numbering, from 0, videos by name, exp ids sorted
    # as strings (tests/datasets/test_refvos_format.py has ids where that order matters).
    got = [(e.video, e.exp_id, e.anno_ids) for e in split.iter_expressions()]
    assert got == [
        ("v1", "0", ("0",)),
        ("v1", "1", ("1",)),
        ("v1", "2", ("2",)),
        ("v2", "0", ("3",)),
    ]
    assert not split.has_masks


def test_errors_name_file_and_key(split_root: Path) -> None:
    mask_file = split_root / "mask_dict.json"
    data = json.loads(mask_file.read_text())
    meta = json.loads((split_root / "meta_expressions.json").read_text())
    meta["videos"]["v1"]["expressions"]["0"]["anno_id"] = [42]
    (split_root / "meta_expressions.json").write_text(json.dumps(meta))
    data["1"][0] = {"size": [10, 10], "counts": "not an rle"}
    data["2"][0] = encode_mask(np.zeros((9, 12), bool))  # v2 frames are 8x12
    mask_file.write_text(json.dumps(data))
    split = RefVOSSplit(split_root)
    with pytest.raises(KeyError, match=r"mask_dict.json.*'42'"):
        split.expression_masks("v1", "0")
    with pytest.raises(ValueError, match=r"mask_dict.json: anno_id '1' frame 0: not a decod"):
        split.expression_masks("v1", "1")
    with pytest.raises(ValueError, match=r"anno_id '2' frame 0: RLE size \(9, 12\) differs"):
        split.expression_masks("v2", "0")


@pytest.mark.parametrize(
    "rle",
    [
        {"size": [4, 4], "counts": "0"},  # runs cover 0 of 16 pixels
        {"size": [4, 4]},
        {"size": [4, 4], "counts": [3, 20]},
        "garbage",
    ],
)
def test_decode_rle_rejects_malformed(rle: object) -> None:
    with pytest.raises(ValueError, match="where: not a decodable RLE"):
        decode_rle(rle, "where")


def test_encode_decode_round_trip() -> None:
    rng = np.random.default_rng(0)
    mask = rng.random((7, 9)) > 0.5
    np.testing.assert_array_equal(decode_rle(encode_mask(mask)), mask)
    np.testing.assert_array_equal(
        decode_rle({"size": [2, 2], "counts": [1, 2, 1]}), np.array([[0, 1], [1, 0]], bool)
    )


# ----------------------------------------------------------------------------- scoring


@pytest.mark.parametrize("kind", ["png", "json"])
def test_hand_computed_scores(split_root: Path, tmp_path: Path, kind: str) -> None:
    if kind == "png":
        source = open_predictions(write_png_predictions(tmp_path / "pred", fixture_predictions()))
        assert isinstance(source, PngPredictions)
    else:
        source = open_predictions(
            write_json_predictions(tmp_path / "r.json", fixture_predictions())
        )
        assert isinstance(source, RleJsonPredictions)
    result = evaluate_predictions(RefVOSSplit(split_root), source, progress=False)
    assert result["J"] == pytest.approx(EXPECTED_J, abs=1e-12)
    assert result["F"] == pytest.approx(EXPECTED_F, abs=1e-12)
    assert result["J&F"] == pytest.approx(EXPECTED_JF, abs=1e-12)
    assert result["protocol"] == "mevis-per-expression"
    per = result["per_expression"]
    assert per["v1/1"]["J"] == pytest.approx(0.5) and per["v1/1"]["F"] == pytest.approx(0.5)
    assert per["v1/2"]["J"] == pytest.approx(1 / 3) and per["v1/2"]["F"] == pytest.approx(0.625)
    assert result["missing"]["num_frames"] == 0


def test_sa2va_annotations_level_and_positional_json(split_root: Path, tmp_path: Path) -> None:
    write_png_predictions(tmp_path / "work" / "Annotations", fixture_predictions())
    split = RefVOSSplit(split_root)
    assert evaluate_predictions(split, open_predictions(tmp_path / "work"), progress=False)[
        "J&F"
    ] == pytest.approx(EXPECTED_JF)
    path = write_json_predictions(tmp_path / "r.json", fixture_predictions())
    data = json.loads(path.read_text())
    for exps in data.values():
        for item in exps.values():
            del item["frames"]  # masks then follow meta_expressions' frame order
    path.write_text(json.dumps(data))
    assert evaluate_predictions(split, open_predictions(path), progress=False)[
        "J&F"
    ] == pytest.approx(EXPECTED_JF)


def _remove(pred: Path, what: str) -> None:
    if what == "frame":
        (pred / "v1" / "0" / "00001.png").unlink()
    elif what == "video":
        for f in sorted((pred / "v2").rglob("*"), reverse=True):
            f.rmdir() if f.is_dir() else f.unlink()
        (pred / "v2").rmdir()
    elif what == "empty":
        for f in sorted(pred.rglob("*"), reverse=True):
            f.rmdir() if f.is_dir() else f.unlink()


# Expected (J, F) with the removed masks scored as empty (hand computation):
# frame: v1/0 frame 1 empty vs A -> J = F = 0 there, v1/0 = (0.5, 0.5).
# video: v2/0 empty vs C | D on both frames -> (0, 0).
# empty: v1/0 (0, 0); v1/1 frame 0 (0, 0), frame 1 empty vs empty (1, 1) -> (0.5, 0.5);
#        v1/2 (0, 0); v2/0 (0, 0).
MISSING_CASES = {
    "frame": ((0.5 + 0.5 + 1 / 3 + 1) / 4, (0.5 + 0.5 + 0.625 + 1) / 4, 1),
    "video": ((1 + 0.5 + 1 / 3 + 0) / 4, (1 + 0.5 + 0.625 + 0) / 4, 2),
    "empty": (0.5 / 4, 0.5 / 4, 8),
}


@pytest.mark.parametrize("what", list(MISSING_CASES))
def test_missing_predictions(split_root: Path, tmp_path: Path, what: str) -> None:
    pred = write_png_predictions(tmp_path / "pred", fixture_predictions())
    _remove(pred, what)
    split = RefVOSSplit(split_root)
    pattern = "no predictions found" if what == "empty" else "missing .* --allow-missing"
    with pytest.raises(PredictionError, match=pattern):
        evaluate_predictions(split, open_predictions(pred), progress=False)
    result = evaluate_predictions(split, open_predictions(pred), allow_missing=True, progress=False)
    j, f, n_frames = MISSING_CASES[what]
    assert (result["J"], result["F"]) == (pytest.approx(j), pytest.approx(f))
    assert result["missing"]["num_frames"] == n_frames


@pytest.mark.parametrize("allow_missing", [False, True])
@pytest.mark.parametrize("what", ["size", "unknown_exp", "unknown_video"])
def test_bad_predictions_always_fail(
    split_root: Path, tmp_path: Path, what: str, allow_missing: bool
) -> None:
    pred = write_png_predictions(tmp_path / "pred", fixture_predictions())
    if what == "size":
        Image.fromarray(np.zeros((10, 11), np.uint8)).save(pred / "v1" / "2" / "00000.png")
        pattern = r"v1/2 frame '00000' has size \(10, 11\).*\(10, 10\)"
    else:
        key = "v1/99" if what == "unknown_exp" else "v9/0"
        write_png_predictions(pred, {key.split("/")[0]: {key.split("/")[1]: [A]}})
        shown = key if what == "unknown_exp" else "v9"  # an unknown video is named alone
        pattern = f"not in .*meta_expressions.json: {shown}"
    with pytest.raises(PredictionError, match=pattern):
        evaluate_predictions(
            RefVOSSplit(split_root),
            open_predictions(pred),
            allow_missing=allow_missing,
            progress=False,
        )


def test_nonexistent_prediction_path(split_root: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="predictions not found"):
        open_predictions(tmp_path / "nope")


def test_our_results_json_is_not_a_prediction_file(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"dataset": "mevis_u", "metrics": {}}))
    with pytest.raises(PredictionError, match="MPR-CMA results.json"):
        RleJsonPredictions(path)


def test_pickle_writer_is_plain_data(tmp_path: Path) -> None:
    root = write_refvos_split(tmp_path / "s", fixture_videos(), mask_format="pkl")
    with open(root / "mask_dict.pkl", "rb") as f:
        data = pickle.load(f)
    assert set(data) == {"0", "1", "2", "3"} and data["1"][1] is None
