"""The every-object yardstick scores the union of all objects with the real evaluators."""

import numpy as np
import pytest

from mpr_cma.datasets import write_refvos_split
from mpr_cma.datasets.refcoco_format import write_refcoco
from mpr_cma.evaluation import region_similarity
from mpr_cma.evaluation.yardsticks import refcoco_every_object, refvos_every_object


def box(h, w, y0, y1, x0, x1):
    mask = np.zeros((h, w), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_refcoco_every_object_is_the_union_of_the_image(tmp_path):
    a, b = box(20, 30, 0, 10, 0, 10), box(20, 30, 10, 20, 10, 30)   # 100 and 200 pixels
    c = box(20, 30, 5, 15, 5, 15)                                      # alone on image 2
    images = [{"id": 1, "file_name": "a.jpg", "height": 20, "width": 30},
              {"id": 2, "file_name": "b.jpg", "height": 20, "width": 30}]
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": a},
            {"id": 2, "image_id": 1, "category_id": 2, "segmentation": b},
            {"id": 3, "image_id": 2, "category_id": 1, "segmentation": c}]
    refs = [{"ref_id": 1, "ann_id": 1, "split": "val", "sentences": ["the left one"]},
            {"ref_id": 2, "ann_id": 3, "split": "val", "sentences": ["it", "that"]},
            {"ref_id": 3, "ann_id": 2, "split": "train", "sentences": ["not scored"]}]
    write_refcoco(tmp_path, "refcoco", images, anns, refs)
    metrics = refcoco_every_object(tmp_path, "refcoco", "val")
    # Sentence 1: I 100, U 300. Sentences 2 and 3 (image 2 has one object): I = U = 100.
    assert metrics["cIoU"] == pytest.approx((100 + 200) / (300 + 200))
    assert metrics["gIoU"] == pytest.approx((1 / 3 + 1 + 1) / 3)
    assert metrics["num_items"] == 3


def test_refvos_every_object_unites_the_objects_of_the_video(tmp_path):
    t, h, w = 3, 16, 16
    first = np.stack([box(h, w, 0, 8, 0, 8)] * t)
    second = np.stack([box(h, w, 8, 16, 8, 16)] * t)
    root = write_refvos_split(tmp_path / "valid_u", {"v": {
        "masks": {"1": first, "2": second},
        "expressions": {"0": {"exp": "the first", "anno_id": ["1"]},
                        "1": {"exp": "both", "anno_id": ["1", "2"]}}}})
    metrics = refvos_every_object(root)
    union = first | second
    j_first = region_similarity(first, union).mean()
    assert metrics["num_expressions"] == 2
    assert metrics["J"] == pytest.approx((j_first + 1.0) / 2)
    assert 0 < metrics["F"] <= 1 and metrics["J&F"] == pytest.approx(
        (metrics["J"] + metrics["F"]) / 2)
