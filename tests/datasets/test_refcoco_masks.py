"""RefCOCO ground truth of annotations made of several polygons: union vs Sa2VA's rule.

Expected masks are drawn by hand and Sa2VA's rule re-implemented without pycocotools in
tests/datasets/_overlap_refcoco.py (its docstring derives the numbers).
"""

import numpy as np
import pytest

from mpr_cma.datasets import load_refcoco, ref_mask, segmentation_to_mask
from mpr_cma.evaluation import RefCOCOEvaluator
from tests.datasets import _overlap_refcoco as ov


def test_hand_derived_sizes():
    """The table of the fixture's docstring, from the hand-drawn masks only."""
    sizes = {}
    for ref, rects in ov.RECTANGLES.items():
        union = ov.union_by_hand(ref)
        sa2va = ov.sa2va_by_hand([ov.rectangle(r) for r in rects])
        sizes[ref] = (int(union.sum()), int(sa2va.sum()), int((union & sa2va).sum()))
    assert sizes == {0: (28, 24, 24), 1: (20, 24, 16), 2: (16, 16, 16), 3: (16, 16, 16)}


@pytest.mark.parametrize("ref", sorted(ov.RECTANGLES))
def test_rules_on_the_fixture(ref):
    polygons = [ov.polygon(r) for r in ov.RECTANGLES[ref]]
    union = segmentation_to_mask(polygons, ov.H, ov.W)
    sa2va = segmentation_to_mask(polygons, ov.H, ov.W, gt_rule="sa2va")
    np.testing.assert_array_equal(union, ov.union_by_hand(ref))
    np.testing.assert_array_equal(
        sa2va, ov.sa2va_by_hand([ov.rectangle(r) for r in ov.RECTANGLES[ref]]))


def test_random_overlapping_rectangles_match_the_independent_rule():
    rng = np.random.default_rng(0)
    differ = 0
    for _ in range(200):
        rects = []
        for _ in range(rng.integers(1, 5)):
            r0, c0 = rng.integers(0, ov.H - 1), rng.integers(0, ov.W - 1)
            rects.append((r0, rng.integers(r0, ov.H), c0, rng.integers(c0, ov.W)))
        got = segmentation_to_mask([ov.polygon(r) for r in rects], ov.H, ov.W, "sa2va")
        want = ov.sa2va_by_hand([ov.rectangle(r) for r in rects])
        np.testing.assert_array_equal(got, want, err_msg=str(rects))
        differ += not np.array_equal(got, np.logical_or.reduce([ov.rectangle(r)
                                                                 for r in rects]))
    assert differ > 50  # the draw exercises overlaps, not only single polygons


def test_rle_segmentations_and_bad_rule():
    rle = {"size": [4, 4], "counts": [5, 3, 8]}
    np.testing.assert_array_equal(segmentation_to_mask(rle, 4, 4, "sa2va"),
                                  segmentation_to_mask(rle, 4, 4))
    with pytest.raises(ValueError, match="gt_rule must be one of"):
        segmentation_to_mask(rle, 4, 4, "sum")


def test_perfect_prediction_under_sa2va_ground_truth(tmp_path):
    """The measured size of the difference on this fixture: cIoU 9/11, gIoU 6/7."""
    records = load_refcoco(ov.write_overlap_root(tmp_path), "refcoco", split="val")
    scores = {}
    for rule in ("union", "sa2va"):
        evaluator = RefCOCOEvaluator()
        for rec in records:
            evaluator.process(ref_mask(rec), ref_mask(rec, gt_rule=rule), rec.ref_id)
        scores[rule] = evaluator.compute()
    assert scores["union"]["cIoU"] == scores["union"]["gIoU"] == 1.0
    assert scores["sa2va"]["cIoU"] == pytest.approx(ov.EXPECTED["cIoU"], abs=1e-12)
    assert scores["sa2va"]["gIoU"] == pytest.approx(ov.EXPECTED["gIoU"], abs=1e-12)
