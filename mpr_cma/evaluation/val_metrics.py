"""`ReferSegMetric`: RefCOCO cIoU / gIoU and Ref-VOS J&F from (prediction, ground truth) arrays.

An mmengine ``BaseMetric`` for the validation loop during training (the evaluator of
`val_evaluator = dict(type='ReferSegMetric')`). Each data sample carries its masks, so the
metric needs no files: image samples are scored like RefCOCO (:class:`RefSegAccumulator`:
cIoU = summed intersections / summed unions, gIoU = mean IoU), video samples like MeViS
(:func:`expression_scores` per frame, :func:`aggregate_expressions` over expressions).
Only the per-item counts and per-frame scores travel between ranks. Samples are grouped
by their "source" (e.g. "refcoco_val", "mevis_u_valid_u"), which names the metrics:
``{source}/cIoU``, ``{source}/gIoU`` and ``{source}/J&F``, ``{source}/J``, ``{source}/F``.
"""

from collections.abc import Sequence

import numpy as np
from mmengine.evaluator import BaseMetric

from mpr_cma.evaluation.aggregation import (
    RefSegAccumulator,
    aggregate_expressions,
    expression_scores,
)
from mpr_cma.evaluation.metrics import DEFAULT_BOUND_TH
from mpr_cma.registry import METRICS

__all__ = ["ReferSegMetric"]


@METRICS.register_module()
class ReferSegMetric(BaseMetric):
    """Referring-segmentation scores of image and video samples, grouped by source.

    Args:
        bound_th: boundary tolerance of F (the DAVIS default).
        collect_device, prefix: as mmengine's ``BaseMetric`` (no prefix by default: the
            sources name the metrics).
    """

    default_prefix = None

    def __init__(self, bound_th: float = DEFAULT_BOUND_TH, collect_device: str = "cpu",
                 prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.bound_th = bound_th

    def process(self, data_batch: object, data_samples: Sequence[dict]) -> None:
        """Score a batch of predictions.

        Args:
            data_batch: unused (each sample carries its ground truth).
            data_samples: dicts with "source" (str), "key" (item id, str), "kind"
                ("image" or "video"), "pred" and "gt": bool masks of one shape, (H, W) for
                an image, (T, H, W) for a video.

        Raises:
            ValueError: an unknown kind, or prediction and ground truth of different
                shapes (the message names the item).
        """
        for sample in data_samples:
            pred, gt = np.asarray(sample["pred"]) != 0, np.asarray(sample["gt"]) != 0
            where = f"{sample['source']} {sample['key']}"
            if pred.shape != gt.shape:
                raise ValueError(f"{where}: prediction {pred.shape} and ground truth "
                                 f"{gt.shape} differ in shape")
            if sample["kind"] == "image":
                acc = RefSegAccumulator()
                acc.update(gt, pred)
                counts = acc.compute()
                result = {"intersection": counts["intersection"], "union": counts["union"],
                          "iou": counts["gIoU"]}
            elif sample["kind"] == "video":
                j, f = expression_scores(gt, pred, self.bound_th)
                result = {"J": j, "F": f}
            else:
                raise ValueError(f"{where}: kind must be 'image' or 'video', got "
                                 f"{sample['kind']!r}")
            self.results.append({"source": sample["source"], "key": str(sample["key"]),
                                 "kind": sample["kind"], **result})

    def compute_metrics(self, results: list[dict]) -> dict[str, float]:
        """{source/cIoU, source/gIoU} per image source, {source/J&F, source/J, source/F}
        per video source, and {source/num_items}."""
        metrics: dict[str, float] = {}
        for source in sorted({r["source"] for r in results}):
            mine = [r for r in results if r["source"] == source]
            if mine[0]["kind"] == "image":
                union = sum(r["union"] for r in mine)
                metrics[f"{source}/cIoU"] = (sum(r["intersection"] for r in mine) / union
                                             if union else 1.0)
                metrics[f"{source}/gIoU"] = float(np.mean([r["iou"] for r in mine]))
            else:
                scores = aggregate_expressions({r["key"]: (r["J"], r["F"]) for r in mine})
                for name in ("J&F", "J", "F"):
                    metrics[f"{source}/{name}"] = scores[name]
            metrics[f"{source}/num_items"] = len(mine)
        return metrics
