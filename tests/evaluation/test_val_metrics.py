"""ReferSegMetric: hand-computed cIoU / gIoU and J&F from arrays, grouped by source."""

import numpy as np
import pytest

from mpr_cma.evaluation import ReferSegMetric


def image(source, key, gt, pred):
    return {"source": source, "key": key, "kind": "image", "gt": gt, "pred": pred}


def test_image_and_video_sources_are_scored_apart():
    gt = np.zeros((4, 4), bool)
    gt[0, :] = True                               # 4 pixels
    half = np.zeros((4, 4), bool)
    half[0, :2] = True                            # 2 of them: I = 2, U = 4
    empty = np.zeros((4, 4), bool)
    video_gt = np.zeros((2, 8, 8), bool)
    video_gt[:, 2:6, 2:6] = True
    metric = ReferSegMetric()
    metric.process(None, [image("refcoco_val", "a", gt, half),
                          image("refcoco_val", "b", empty, empty)])   # empty vs empty: IoU 1
    metric.process(None, [
        {"source": "mevis_u_valid_u", "key": "v/0", "kind": "video", "gt": video_gt,
         "pred": video_gt.copy()},                                   # J = F = 1
        {"source": "mevis_u_valid_u", "key": "v/1", "kind": "video", "gt": video_gt,
         "pred": np.zeros_like(video_gt)}])                          # J = F = 0
    scores = metric.evaluate(4)
    assert scores["refcoco_val/cIoU"] == pytest.approx(2 / 4)
    assert scores["refcoco_val/gIoU"] == pytest.approx((0.5 + 1.0) / 2)
    assert scores["mevis_u_valid_u/J&F"] == pytest.approx(0.5)
    assert scores["mevis_u_valid_u/J"] == pytest.approx(0.5)
    assert scores["refcoco_val/num_items"] == 2 and scores["mevis_u_valid_u/num_items"] == 2


def test_bad_samples_are_named():
    metric = ReferSegMetric()
    with pytest.raises(ValueError, match="refcoco_val a: prediction"):
        metric.process(None, [image("refcoco_val", "a", np.zeros((2, 2)), np.zeros((3, 2)))])
    with pytest.raises(ValueError, match="kind must be"):
        metric.process(None, [{"source": "s", "key": "k", "kind": "audio",
                               "gt": np.zeros(2), "pred": np.zeros(2)}])
