"""DAVIS 2017 J / F: exact against official numbers and a per-pixel reference; aggregation."""

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage.morphology import disk

from mpr_cma.evaluation import (
    MEVIS_PROTOCOL,
    REF_DAVIS17_PROTOCOL,
    RefSegAccumulator,
    aggregate_expressions,
    annotator_average,
    boundary_f_measure,
    boundary_map,
    boundary_radius,
    expression_scores,
    metrics,
    region_similarity,
)

# Vendored: 6 frames of 3 DAVIS 2017 val sequences with the official code's J / F.
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "davis17_masks"


# ---------------------------------------------------------------- official numbers


@pytest.fixture(scope="module")
def expected_official():
    return json.loads((FIXTURE / "expected_official.json").read_text())["per_sequence"]


def read_ids(folder: Path) -> np.ndarray:
    """(T, H, W) uint8 object ids of a folder of palette PNGs, frames in file-name order."""
    from PIL import Image

    return np.stack([np.array(Image.open(f)) for f in sorted(folder.glob("*.png"))])


@pytest.fixture(params=["frame_by_frame", "one_batch"])
def matching_path(request, monkeypatch):
    """Score every frame in a batch of its own, or all frames in one packed array (the
    crops then sit next to each other: both must be exact)."""
    words = 1 if request.param == "frame_by_frame" else 1 << 40
    monkeypatch.setattr(metrics, "_BATCH_WORDS", words)
    return request.param


@pytest.mark.parametrize("sequence", ["blackswan", "bike-packing", "dogs-jump"])
def test_matches_official_davis_numbers(expected_official, sequence, matching_path):
    ref = read_ids(FIXTURE / "reference" / sequence)
    pred = read_ids(FIXTURE / "prediction" / sequence)
    assert ref.shape == pred.shape
    for obj_id, expected in expected_official[sequence].items():
        k = int(obj_id)
        j = region_similarity(ref == k, pred == k)
        f = boundary_f_measure(ref == k, pred == k)
        assert j.shape == f.shape == (len(ref),) and j.dtype == f.dtype == np.float64
        np.testing.assert_allclose(j, expected["J"], rtol=0, atol=1e-6, err_msg=f"J {k}")
        np.testing.assert_allclose(f, expected["F"], rtol=0, atol=1e-6, err_msg=f"F {k}")


# ---------------------------------------------------------------- per-pixel reference


def naive_boundary(seg: np.ndarray) -> np.ndarray:
    """Official `_seg2bmap` rules written per pixel (right/below/diagonal neighbours)."""
    h, w = seg.shape
    out = np.zeros((h, w), dtype=bool)
    for y in range(h):
        for x in range(w):
            if y == h - 1 and x == w - 1:
                continue
            if y == h - 1:
                out[y, x] = seg[y, x] != seg[y, x + 1]
            elif x == w - 1:
                out[y, x] = seg[y, x] != seg[y + 1, x]
            else:
                neighbours = (seg[y, x + 1], seg[y + 1, x], seg[y + 1, x + 1])
                out[y, x] = any(n != seg[y, x] for n in neighbours)
    return out


def naive_dilate(src: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """cv2.dilate's definition: dst(p) = max over kernel pixels k of src(p + k - centre)."""
    h, w = src.shape
    cy, cx = kernel.shape[0] // 2, kernel.shape[1] // 2
    offsets = [(j - cy, i - cx) for j, i in zip(*np.nonzero(kernel), strict=True)]
    out = np.zeros_like(src, dtype=bool)
    for y in range(h):
        for x in range(w):
            out[y, x] = any(
                0 <= y + dy < h and 0 <= x + dx < w and src[y + dy, x + dx] for dy, dx in offsets
            )
    return out


def naive_f(gt: np.ndarray, pred: np.ndarray, bound_th: float) -> float:
    """Per-pixel boundary F-measure of one frame, with the official special cases."""
    h, w = gt.shape
    radius = bound_th if bound_th >= 1 else math.ceil(bound_th * math.sqrt(h * h + w * w))
    kernel = disk(radius).astype(np.uint8)
    gt_b, pred_b = naive_boundary(gt), naive_boundary(pred)
    gt_dil = naive_dilate(gt_b, kernel)
    # pin the reference to cv2's anchor and border semantics, which the official code uses
    assert np.array_equal(gt_dil, cv2.dilate(gt_b.astype(np.uint8), kernel) > 0)
    n_gt, n_pred = int(gt_b.sum()), int(pred_b.sum())
    if n_gt == 0 or n_pred == 0:
        precision = 1.0 if n_pred == 0 else 0.0
        recall = 1.0 if n_gt == 0 else 0.0
    else:
        precision = (pred_b & gt_dil).sum() / n_pred
        recall = (gt_b & naive_dilate(pred_b, kernel)).sum() / n_gt
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def random_masks(rng, t, h, w):
    """Blobby random masks: thresholded, smoothed noise, plus a few empty frames."""
    noise = cv2.GaussianBlur(rng.random((t, h, w)).transpose(1, 2, 0), (5, 5), 1.2)
    masks = noise.reshape(h, w, t).transpose(2, 0, 1) > rng.uniform(0.4, 0.6)
    masks[rng.random(t) < 0.2] = False
    return masks


@pytest.mark.parametrize(
    ("h", "w", "bound_th"),
    [(12, 17, 0.1), (12, 17, 2), (9, 9, 2.5), (15, 11, 3), (10, 13, 20), (1, 9, 1), (8, 1, 1)],
)
def test_boundary_f_matches_per_pixel_reference(h, w, bound_th, matching_path):
    rng = np.random.default_rng(h * 100 + w)
    gt, pred = random_masks(rng, 6, h, w), random_masks(rng, 6, h, w)
    pred[0] = gt[0]  # one perfect frame
    got = boundary_f_measure(gt, pred, bound_th=bound_th)
    expected = [naive_f(g, p, bound_th) for g, p in zip(gt, pred, strict=True)]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(boundary_map(gt), [naive_boundary(g) for g in gt])



def cv2_f(gt: np.ndarray, pred: np.ndarray, radius: float) -> float:
    """F of one frame with cv2.dilate by skimage's disk, the official computation, on
    :func:`naive_boundary` maps (fast enough for large radii and frames)."""
    kernel = disk(radius).astype(np.uint8)
    gt_b, pred_b = naive_boundary(gt), naive_boundary(pred)
    n_gt, n_pred = int(gt_b.sum()), int(pred_b.sum())
    if n_gt == 0 or n_pred == 0:
        precision = 1.0 if n_pred == 0 else 0.0
        recall = 1.0 if n_gt == 0 else 0.0
    else:
        precision = (pred_b & (cv2.dilate(gt_b.astype(np.uint8), kernel) > 0)).sum() / n_pred
        recall = (gt_b & (cv2.dilate(pred_b.astype(np.uint8), kernel) > 0)).sum() / n_gt
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


@pytest.mark.parametrize(
    ("h", "w", "bound_th"),
    # radii past 63 pixels (the packed words' width), half-integer radii, frames narrower
    # than a word and wider than two
    [(40, 150, 70), (30, 200, 2.5), (25, 9, 4), (48, 140, 0.05), (20, 70, 1)],
)
def test_boundary_f_matches_cv2_reference(h, w, bound_th, matching_path):
    rng = np.random.default_rng(h * 1000 + w)
    gt, pred = random_masks(rng, 8, h, w), random_masks(rng, 8, h, w)
    gt[1], pred[1] = True, True  # full frames: no boundary
    gt[2, :, :3] = pred[3, -2:] = True  # masks on the left and bottom frame edges
    gt[4, : h // 2, w - 2 :] = pred[4, : h // 3, w - 3 :] = True  # right edge
    radius = boundary_radius(bound_th, h, w)
    got = boundary_f_measure(gt, pred, bound_th=bound_th)
    expected = [cv2_f(g, p, radius) for g, p in zip(gt, pred, strict=True)]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    j = region_similarity(gt, pred)
    j2, f2 = metrics.region_and_boundary(gt, pred, bound_th)
    assert j2.tolist() == j.tolist() and f2.tolist() == got.tolist()


def test_hand_computed_square_shifted_by_three():
    gt = np.zeros((8, 10), dtype=bool)
    gt[2:5, 2:5] = True
    pred = np.roll(gt, 3, axis=1)  # columns 5..7: no overlap, J = 0
    # Boundaries (offset half a pixel to the origin) are the 12-pixel rings of the 4x4
    # blocks rows 1..4 x cols 1..4 (gt) and rows 1..4 x cols 4..7 (pred). With r = 1 (a
    # cross) pred matches its 4 pixels in column 4 plus (1,5), (4,5): P = 6/12; likewise
    # gt matches column 4 plus (1,3), (4,3): R = 6/12; F = 2PR / (P + R) = 0.5.
    assert boundary_map(gt).sum() == boundary_map(pred).sum() == 12
    assert region_similarity(gt, pred).tolist() == [0.0]
    assert boundary_f_measure(gt, pred, bound_th=1).tolist() == [0.5]
    # In an 8-wide frame pred touches the right edge, where only the pixel below counts:
    # (2,7) and (3,7) drop out, P = 6/10, R = 6/12, F = 2 * 0.6 * 0.5 / 1.1 = 6/11.
    gt8, pred8 = gt[:, :8], pred[:, :8]
    assert boundary_map(pred8).sum() == 10
    assert boundary_f_measure(gt8, pred8, bound_th=1).tolist() == [pytest.approx(6 / 11)]
    # shifted by one column instead: intersection 3x2 = 6, union 12, J = 0.5
    assert region_similarity(gt, np.roll(gt, 1, axis=1)).tolist() == [0.5]


def test_empty_and_full_frames_follow_the_official_special_cases():
    empty = np.zeros((3, 6, 7), dtype=bool)
    full = np.ones((3, 6, 7), dtype=bool)
    square = empty.copy()
    square[:, 1:4, 2:5] = True
    # empty vs empty: J = 1; both boundaries empty: P = R = 1, F = 1
    assert region_similarity(empty, empty).tolist() == [1.0] * 3
    assert boundary_f_measure(empty, empty).tolist() == [1.0] * 3
    # empty gt vs a square: J = 0; gt boundary empty: P = 0, R = 1, F = 0 (and reverse)
    assert region_similarity(empty, square).tolist() == [0.0] * 3
    assert boundary_f_measure(empty, square).tolist() == [0.0] * 3
    assert boundary_f_measure(square, empty).tolist() == [0.0] * 3
    # a full frame has no boundary either: full vs full gives F = 1, full vs empty too
    assert boundary_f_measure(full, full).tolist() == [1.0] * 3
    assert boundary_f_measure(full, empty).tolist() == [1.0] * 3
    assert region_similarity(full, empty).tolist() == [0.0] * 3


def test_single_frame_and_numeric_masks():
    rng = np.random.default_rng(0)
    gt, pred = random_masks(rng, 2, 20, 30)
    j2, f2 = region_similarity(gt, pred), boundary_f_measure(gt, pred)
    assert j2.shape == f2.shape == (1,)
    # 0/255 uint8 masks (as MeViS predictions are stored) mean the same as bool ones
    j3, f3 = expression_scores(gt[None].astype(np.uint8), pred[None].astype(np.uint8) * 255)
    assert j3.tolist() == j2.tolist() and f3.tolist() == f2.tolist()
    assert boundary_radius(0.008, 480, 854) == 8.0 and boundary_radius(3, 480, 854) == 3.0


@pytest.mark.parametrize(
    ("gt", "pred", "match"),
    [
        (np.zeros((2, 4, 5)), np.zeros((2, 4, 6)), r"same shape.*\(2, 4, 5\).*\(2, 4, 6\)"),
        (np.zeros((4, 5)), np.zeros((1, 4, 5)), r"same shape"),
        (np.zeros(5), np.zeros(5), r"gt must be a \(T, H, W\) or \(H, W\).*\(5,\)"),
        (np.zeros((2, 4, 5)), np.zeros((1, 2, 4, 5)), r"pred must be.*\(1, 2, 4, 5\)"),
        (np.zeros((2, 0, 5)), np.zeros((2, 0, 5)), r"gt frames must have H, W >= 1"),
    ],
)
def test_bad_mask_shapes_raise(gt, pred, match):
    for fn in (region_similarity, boundary_f_measure):
        with pytest.raises(ValueError, match=match):
            fn(gt, pred)


@pytest.mark.parametrize("bound_th", [0, -1, float("nan"), float("inf"), "8", None])
def test_bad_bound_th_raises(bound_th):
    masks = np.zeros((1, 4, 4), dtype=bool)
    with pytest.raises(ValueError, match="bound_th must be a positive finite number"):
        boundary_f_measure(masks, masks, bound_th=bound_th)


def test_boundary_map_rejects_other_sizes():
    seg = np.zeros((4, 6), dtype=bool)
    assert boundary_map(seg, width=6, height=4).shape == (4, 6)
    with pytest.raises(ValueError, match="own size 6x4.*width=12, height=8"):
        boundary_map(seg, width=12, height=8)


# ---------------------------------------------------------------- aggregation


def test_ciou_and_giou_hand_computed():
    acc = RefSegAccumulator()
    a, b = np.zeros((4, 4), dtype=bool), np.zeros((4, 4), dtype=bool)
    a[0, :4] = True  # 4 pixels
    b[0, 2:4] = b[1, 2:4] = True  # 4 pixels, 2 shared with a
    c = np.zeros((5, 5), dtype=bool)
    c[:2] = True  # 10 pixels
    # item 1: I = 2, U = 6, IoU = 1/3; item 2: identical, I = U = 10, IoU = 1;
    # item 3: empty vs empty, I = U = 0, IoU = 1 (counts for gIoU, adds nothing to cIoU).
    # cIoU = (2 + 10 + 0) / (6 + 10 + 0) = 0.75; gIoU = (1/3 + 1 + 1) / 3 = 7/9.
    assert acc.update(a, b) == pytest.approx(1 / 3)
    assert acc.update(c, c) == 1.0
    assert acc.update(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0
    out = acc.compute()
    assert out["cIoU"] == pytest.approx(0.75) and out["gIoU"] == pytest.approx(7 / 9)
    assert (out["num_items"], out["num_empty_items"]) == (3, 1)
    assert (out["intersection"], out["union"]) == (12, 16)
    acc.reset()
    assert len(acc) == 0
    with pytest.raises(ValueError, match="before any update"):
        acc.compute()


def test_refseg_accumulator_bad_input():
    acc = RefSegAccumulator()
    with pytest.raises(ValueError, match=r"gt must be one \(H, W\) mask.*\(1, 4, 4\)"):
        acc.update(np.zeros((1, 4, 4)), np.zeros((1, 4, 4)))
    with pytest.raises(ValueError, match=r"same shape.*\(4, 4\).*\(4, 5\)"):
        acc.update(np.zeros((4, 4)), np.zeros((4, 5)))
    assert len(acc) == 0


def test_per_expression_jf_hand_computed():
    scores = {
        "a": ([1.0, 0.5], [0.5, 0.5]),  # J = 0.75, F = 0.5
        "b": ([0.25], [1.0]),  # J = 0.25, F = 1.0
    }
    # mean over expressions: J = 0.5, F = 0.75, J&F = 0.625 (a frame-pooled mean would
    # give J = (1 + 0.5 + 0.25) / 3 = 0.583, so this also checks the averaging order)
    out = aggregate_expressions(scores)
    assert out["protocol"] == MEVIS_PROTOCOL and out["num_expressions"] == 2
    assert (out["J"], out["F"], out["J&F"]) == pytest.approx((0.5, 0.75, 0.625))
    assert out["per_expression"]["a"] == pytest.approx({"J": 0.75, "F": 0.5, "J&F": 0.625})
    # second annotator: J = 0.5, F = 0, J&F = 0.25; average over the two annotators:
    # J = 0.5, F = 0.375, J&F = (0.625 + 0.25) / 2 = 0.4375
    avg = annotator_average({"anno_0": scores, "anno_1": {"c": ([0.0, 1.0], [0.0, 0.0])}})
    assert avg["protocol"] == REF_DAVIS17_PROTOCOL and avg["num_annotators"] == 2
    assert (avg["J"], avg["F"], avg["J&F"]) == pytest.approx((0.5, 0.375, 0.4375))
    assert avg["per_annotator"]["anno_1"]["J&F"] == pytest.approx(0.25)


def test_aggregation_bad_input():
    with pytest.raises(ValueError, match="at least one expression"):
        aggregate_expressions({})
    with pytest.raises(ValueError, match="at least one annotator"):
        annotator_average({})
    with pytest.raises(ValueError, match=r"'x'.*shapes \(2,\) and \(1,\)"):
        aggregate_expressions({"x": ([1.0, 1.0], [1.0])})
    with pytest.raises(ValueError, match=r"'y'.*\(J_frames, F_frames\) pair"):
        aggregate_expressions({"y": [0.5]})


def test_pairs_equal_single_calls_and_bad_input():
    rng = np.random.default_rng(3)
    gt, pred = random_masks(rng, 5, 30, 70), random_masks(rng, 5, 30, 70)
    j, f = metrics.region_and_boundary_pairs(list(zip(gt, pred, strict=True)))
    for t in range(5):
        jt, ft = metrics.region_and_boundary(gt[t], pred[t])
        assert (j[t], f[t]) == (jt[0], ft[0])
    assert [a.shape for a in metrics.region_and_boundary_pairs([])] == [(0,), (0,)]
    with pytest.raises(ValueError, match="one frame size"):
        metrics.region_and_boundary_pairs([(gt[0], pred[0]), (gt[0, :5], pred[0, :5])])
    with pytest.raises(ValueError, match=r"two \(H, W\) masks"):
        metrics.region_and_boundary_pairs([(gt, pred)])
