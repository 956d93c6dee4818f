"""Benchmark-level aggregation: RefCOCO cIoU/gIoU, MeViS J&F, Ref-DAVIS17 annotator average.

All scores are fractions in [0, 1] (papers print them x100).

* RefCOCO / RefCOCO+ / RefCOCOg (one item per sentence, masks at the image's original
  resolution): cIoU = sum of intersections / sum of unions over all items; gIoU = mean of
  the per-item IoU, an empty-vs-empty item counting 1. See :class:`RefSegAccumulator`.
* MeViS (tools/eval_mevis.py; Sa2VA's Ref-DAVIS17 script does the same): per expression,
  J and F are the means over its frames of :func:`region_similarity` and
  :func:`boundary_f_measure`; the benchmark J and F are the means over expressions and
  J&F = (J + F) / 2. See :func:`expression_scores` and :func:`aggregate_expressions`.
* Ref-DAVIS17, ReferFormer-style: the expressions come in sets, one per annotator; each set
  is scored as above and J, F and J&F are averaged over the sets. See
  :func:`annotator_average`, whose result names the protocol.
"""

from collections.abc import Mapping

import numpy as np

from mpr_cma.evaluation.metrics import (
    DEFAULT_BOUND_TH,
    region_and_boundary,
)

MEVIS_PROTOCOL = "mevis-per-expression"
REF_DAVIS17_PROTOCOL = "ref-davis17-annotator-average"

__all__ = [
    "MEVIS_PROTOCOL",
    "REF_DAVIS17_PROTOCOL",
    "RefSegAccumulator",
    "aggregate_expressions",
    "annotator_average",
    "expression_scores",
]


class RefSegAccumulator:
    """Accumulates (gt, pred) mask pairs and reports cIoU and gIoU (RefCOCO protocol).

    Example::

        acc = RefSegAccumulator()
        for gt, pred in items:  # one item per sentence, masks at original resolution
            acc.update(gt, pred)
        acc.compute()  # {"cIoU": ..., "gIoU": ..., "num_items": ..., ...}
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget every item seen so far."""
        self._intersection = 0
        self._union = 0
        self._num_empty = 0
        self._ious: list[float] = []

    def __len__(self) -> int:
        return len(self._ious)

    def update(self, gt: np.ndarray, pred: np.ndarray) -> float:
        """Add one item.

        Args:
            gt: Ground-truth mask (H, W) at the image's original resolution; bool or
                numeric (non-zero = foreground).
            pred: Predicted mask, same shape as `gt`.

        Returns:
            The item's IoU (1.0 when both masks are empty).

        Raises:
            ValueError: If a mask is not 2-D or the shapes differ.
        """
        gt, pred = np.asarray(gt), np.asarray(pred)
        for name, mask in (("gt", gt), ("pred", pred)):
            if mask.ndim != 2:
                raise ValueError(f"{name} must be one (H, W) mask, got shape {mask.shape}")
        if gt.shape != pred.shape:
            raise ValueError(
                f"gt and pred must have the same shape, got gt {gt.shape} and pred {pred.shape}"
            )
        gt, pred = gt != 0, pred != 0
        inter = int(np.count_nonzero(gt & pred))
        union = int(np.count_nonzero(gt) + np.count_nonzero(pred)) - inter
        iou = inter / union if union else 1.0
        self._intersection += inter
        self._union += union
        self._num_empty += int(union == 0)
        self._ious.append(iou)
        return iou

    def compute(self) -> dict[str, float | int]:
        """Return the metrics over all items added since the last reset.

        Returns:
            dict with "cIoU" (1.0 if every item is empty-vs-empty), "gIoU", "num_items",
            "num_empty_items" (empty-vs-empty), "intersection" and "union" (pixel sums).

        Raises:
            ValueError: If no item has been added.
        """
        if not self._ious:
            raise ValueError("RefSegAccumulator.compute() called before any update()")
        return {
            "cIoU": self._intersection / self._union if self._union else 1.0,
            "gIoU": float(np.mean(self._ious)),
            "num_items": len(self._ious),
            "num_empty_items": self._num_empty,
            "intersection": self._intersection,
            "union": self._union,
        }


def expression_scores(
    gt: np.ndarray, pred: np.ndarray, bound_th: float = DEFAULT_BOUND_TH
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame J and F of one expression's video.

    Args:
        gt: Ground-truth masks (T, H, W): the union of the expression's objects per frame.
        pred: Predicted masks, same shape.
        bound_th: Boundary tolerance passed to :func:`boundary_f_measure`.

    Returns:
        (J, F): two float64 arrays of shape (T,).
    """
    # Equal to (region_similarity, boundary_f_measure), from one crop of each frame.
    return region_and_boundary(gt, pred, bound_th)


def _expression_means(exp_id: str, scores: tuple[np.ndarray, np.ndarray]) -> tuple[float, float]:
    """Mean J and mean F over the frames of one expression, with input checks."""
    if not (isinstance(scores, tuple | list) and len(scores) == 2):
        raise ValueError(f"expression {exp_id!r}: expected a (J_frames, F_frames) pair")
    j, f = (np.asarray(s, dtype=np.float64) for s in scores)
    if j.ndim != 1 or j.shape != f.shape or j.size == 0:
        raise ValueError(
            f"expression {exp_id!r}: J and F must be equal-length non-empty 1-D per-frame "
            f"arrays, got shapes {j.shape} and {f.shape}"
        )
    return float(j.mean()), float(f.mean())


def aggregate_expressions(
    scores: Mapping[str, tuple[np.ndarray, np.ndarray]],
) -> dict[str, object]:
    """MeViS-protocol J, F and J&F from per-frame scores of each expression.

    Args:
        scores: {exp_id: (J_frames, F_frames)}, each a float (T,) array, e.g. from
            :func:`expression_scores`. An expression without a prediction should be entered
            by the caller with zeros (the official script scores it J = F = 0).

    Returns:
        dict with "protocol" (``"mevis-per-expression"``), "J", "F" (means over
        expressions), "J&F" = (J + F) / 2, "num_expressions" and "per_expression"
        ({exp_id: {"J", "F", "J&F"}}).

    Raises:
        ValueError: If `scores` is empty or an entry is not a pair of equal-length,
            non-empty 1-D arrays.
    """
    if not scores:
        raise ValueError("aggregate_expressions needs at least one expression")
    per_expression = {}
    for exp_id, pair in scores.items():
        j, f = _expression_means(exp_id, pair)
        per_expression[exp_id] = {"J": j, "F": f, "J&F": (j + f) / 2}
    mean_j = float(np.mean([v["J"] for v in per_expression.values()]))
    mean_f = float(np.mean([v["F"] for v in per_expression.values()]))
    return {
        "protocol": MEVIS_PROTOCOL,
        "J": mean_j,
        "F": mean_f,
        "J&F": (mean_j + mean_f) / 2,
        "num_expressions": len(per_expression),
        "per_expression": per_expression,
    }


def annotator_average(
    per_annotator: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]],
) -> dict[str, object]:
    """Ref-DAVIS17 J, F and J&F averaged over the annotators' expression sets.

    Each annotator's set is scored with :func:`aggregate_expressions`; the result is the
    plain mean over sets of J, F and J&F. Numbers from this function are not comparable
    with a single pooled set, nor with DAVIS-toolkit (per-object) averages.

    Args:
        per_annotator: {annotator: {exp_id: (J_frames, F_frames)}}.

    Returns:
        dict with "protocol" (``"ref-davis17-annotator-average"``), "J", "F", "J&F",
        "num_annotators" and "per_annotator" ({annotator: aggregate_expressions result}).

    Raises:
        ValueError: If there is no annotator, or a set is invalid (see
            :func:`aggregate_expressions`).
    """
    if not per_annotator:
        raise ValueError("annotator_average needs at least one annotator")
    results = {name: aggregate_expressions(scores) for name, scores in per_annotator.items()}
    return {
        "protocol": REF_DAVIS17_PROTOCOL,
        "J": float(np.mean([r["J"] for r in results.values()])),
        "F": float(np.mean([r["F"] for r in results.values()])),
        "J&F": float(np.mean([r["J&F"] for r in results.values()])),
        "num_annotators": len(results),
        "per_annotator": results,
    }
