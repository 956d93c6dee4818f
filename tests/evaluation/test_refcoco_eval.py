"""RefCOCOEvaluator: cIoU vs gIoU on hand-computed items, bad inputs, the fixture end to end."""

import numpy as np
import pytest
import torch

from mpr_cma.datasets.refcoco_format import load_refcoco, ref_mask, sentence_items
from mpr_cma.evaluation.refcoco import RefCOCOEvaluator
from tests.datasets.test_refcoco_format import build_refcoco_root


def box(shape, y0, y1, x0, x1):
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return mask


def three_items():
    """(item_id, pred, gt) at three different original resolutions.

    big:   gt 10x10 = 100 px, pred = 9 of its rows (90 px)  -> I 90, U 100, IoU 0.9
    tiny:  gt 1 px, pred the next pixel                     -> I 0,  U 2,   IoU 0
    exact: gt 2x2 = 4 px, pred identical                    -> I 4,  U 4,   IoU 1
    cIoU = 94 / 106, gIoU = (0.9 + 0 + 1) / 3: the large object dominates cIoU only.
    """
    return [
        ("big", box((20, 30), 0, 9, 0, 10), box((20, 30), 0, 10, 0, 10)),
        ("tiny", box((5, 5), 0, 1, 1, 2), box((5, 5), 0, 1, 0, 1)),
        ("exact", box((6, 4), 2, 4, 1, 3), box((6, 4), 2, 4, 1, 3)),
    ]


def test_ciou_vs_giou_hand_computed():
    evaluator = RefCOCOEvaluator(dataset="refcoco", split="val")
    ious = [evaluator.process(pred, gt, item_id) for item_id, pred, gt in three_items()]
    assert ious == pytest.approx([0.9, 0.0, 1.0])
    results = evaluator.compute()
    assert results["cIoU"] == pytest.approx(94 / 106)
    assert results["gIoU"] == pytest.approx(1.9 / 3)
    assert results["num_items"] == 3 and results["num_empty_items"] == 0
    assert (results["intersection"], results["union"]) == (94, 106)
    assert results["per_item"] == pytest.approx({"big": 0.9, "tiny": 0.0, "exact": 1.0})
    assert (results["dataset"], results["split"]) == ("refcoco", "val")


def test_empty_vs_empty_counts_one():
    evaluator = RefCOCOEvaluator()
    evaluator.process(np.zeros((4, 4), bool), np.zeros((4, 4), bool), 1)
    evaluator.process(box((4, 4), 0, 2, 0, 2), box((4, 4), 0, 2, 0, 1), 2)  # I 2, U 4
    results = evaluator.compute()
    assert results["gIoU"] == pytest.approx((1.0 + 0.5) / 2)
    assert results["cIoU"] == pytest.approx(2 / 4)
    assert results["num_empty_items"] == 1
    assert "dataset" not in results and list(results["per_item"]) == ["1", "2"]


@pytest.mark.parametrize("convert", [
    lambda m: m,
    lambda m: m.astype(np.uint8),
    lambda m: m.astype(np.float32),
    lambda m: torch.from_numpy(m),
], ids=["bool", "uint8", "float01", "tensor"])
def test_accepts_binary_masks_of_any_dtype(convert):
    evaluator = RefCOCOEvaluator()
    for item_id, pred, gt in three_items():
        evaluator.process(convert(pred), convert(gt), item_id)
    assert evaluator.compute()["cIoU"] == pytest.approx(94 / 106)


def test_size_mismatch_names_the_item():
    evaluator = RefCOCOEvaluator()
    with pytest.raises(ValueError, match=r"item '7_3': pred mask \(8, 8\) and gt mask \(12, 16\)"):
        evaluator.process(np.zeros((8, 8), bool), np.zeros((12, 16), bool), "7_3")
    assert len(evaluator) == 0


@pytest.mark.parametrize("pred, message", [
    (np.full((4, 4), 0.7, np.float32), "not binary"),
    (np.zeros((1, 4, 4), bool), r"must be \(H, W\)"),
])
def test_bad_predictions(pred, message):
    with pytest.raises(ValueError, match=message):
        RefCOCOEvaluator().process(pred, np.zeros((4, 4), bool), "x")


def test_duplicate_item_compute_before_process_and_reset():
    evaluator = RefCOCOEvaluator()
    with pytest.raises(ValueError, match="before any process"):
        evaluator.compute()
    evaluator.process(np.ones((2, 2), bool), np.ones((2, 2), bool), "a")
    with pytest.raises(ValueError, match="'a' was already processed"):
        evaluator.process(np.ones((2, 2), bool), np.ones((2, 2), bool), "a")
    evaluator.reset()
    assert len(evaluator) == 0
    evaluator.process(np.zeros((2, 2), bool), np.ones((2, 2), bool), "a")
    assert evaluator.compute()["cIoU"] == 0.0


def test_fixture_end_to_end(tmp_path):
    """Per sentence, gt = ref_mask at the image's size; a perfect and an empty predictor."""
    build_refcoco_root(tmp_path)
    items = sentence_items(load_refcoco(tmp_path, "refcoco", split="val"))
    perfect, empty = RefCOCOEvaluator(), RefCOCOEvaluator()
    for item_id, record, _ in items:
        gt = ref_mask(record)
        perfect.process(gt.copy(), gt, item_id)
        empty.process(np.zeros((record.height, record.width), bool), gt, item_id)
    assert perfect.compute()["cIoU"] == 1.0 and perfect.compute()["num_items"] == 5
    assert empty.compute()["gIoU"] == 0.0
    assert list(empty.per_item) == ["1_1", "1_2", "1_3", "2_4", "2_5"]
