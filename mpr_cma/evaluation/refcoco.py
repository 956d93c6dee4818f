"""RefCOCO / RefCOCO+ / RefCOCOg evaluator: cIoU and gIoU over sentences.

One item per sentence; the predicted and ground-truth masks are compared at the image's
original resolution (resize predictions back before calling :meth:`RefCOCOEvaluator.process`).
cIoU = sum of intersections / sum of unions over all items, gIoU = mean per-item IoU with an
empty-vs-empty item counting 1; the accumulation is :class:`RefSegAccumulator`'s.
"""

from typing import Any

import numpy as np

from mpr_cma.evaluation.aggregation import RefSegAccumulator

__all__ = ["RefCOCOEvaluator"]


def _as_mask(mask: Any, name: str, item_id: str) -> np.ndarray:
    """A 2-D binary array from a numpy array / CPU tensor, rejecting soft (probability) maps."""
    if hasattr(mask, "detach"):  # torch tensor: no torch import needed here
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"item {item_id!r}: {name} mask must be (H, W), got shape {mask.shape}")
    if mask.dtype != bool and not np.isin(mask, (0, 1)).all():
        raise ValueError(
            f"item {item_id!r}: {name} mask is not binary (values other than 0/1); "
            "threshold logits/probabilities before scoring"
        )
    return mask.astype(bool, copy=False)


class RefCOCOEvaluator:
    """Scores referring-segmentation predictions the RefCOCO way (mmengine process/compute).

    Example::

        evaluator = RefCOCOEvaluator(dataset="refcoco", split="val")
        for item_id, record, sentence in sentence_items(records):
            evaluator.process(predict(record, sentence), ref_mask(record), item_id)
        evaluator.compute()  # {"cIoU", "gIoU", "num_items", ..., "per_item": {id: IoU}}

    Args:
        dataset: Optional dataset name, echoed in the results.
        split: Optional split name, echoed in the results.
    """

    def __init__(self, dataset: str | None = None, split: str | None = None) -> None:
        self.dataset = dataset
        self.split = split
        self._acc = RefSegAccumulator()
        self._per_item: dict[str, float] = {}

    def reset(self) -> None:
        """Forget every processed item."""
        self._acc.reset()
        self._per_item = {}

    def __len__(self) -> int:
        return len(self._per_item)

    @property
    def per_item(self) -> dict[str, float]:
        """{item_id: IoU} of the items processed so far, in processing order (a copy)."""
        return dict(self._per_item)

    def process(self, pred: Any, gt: Any, item_id: Any) -> float:
        """Score one sentence.

        Args:
            pred: Predicted binary mask (H, W) at the image's original resolution: bool or
                0/1 numbers (numpy array or CPU tensor).
            gt: Ground-truth mask (H, W), e.g. :func:`ref_mask` of the record.
            item_id: Unique id of the item (e.g. "<ref_id>_<sent_id>"); stored as a string.

        Returns:
            The item's IoU.

        Raises:
            ValueError: If the id was already processed, a mask is not 2-D or not binary, or
                the two masks differ in size (the message names the item and both shapes).
        """
        key = str(item_id)
        if key in self._per_item:
            raise ValueError(f"item {key!r} was already processed")
        pred_mask, gt_mask = _as_mask(pred, "pred", key), _as_mask(gt, "gt", key)
        if pred_mask.shape != gt_mask.shape:
            raise ValueError(
                f"item {key!r}: pred mask {pred_mask.shape} and gt mask {gt_mask.shape} differ in "
                "size; resize the prediction to the image's original (H, W) before scoring"
            )
        iou = self._acc.update(gt_mask, pred_mask)
        self._per_item[key] = iou
        return iou

    def compute(self) -> dict[str, Any]:
        """Metrics over the processed items.

        Returns:
            dict with "cIoU", "gIoU", "num_items", "num_empty_items", "intersection",
            "union" (see :meth:`RefSegAccumulator.compute`), "dataset" and "split" when
            given, and "per_item" ({item_id: IoU}).

        Raises:
            ValueError: If no item has been processed.
        """
        if not self._per_item:
            raise ValueError("RefCOCOEvaluator.compute() called before any process()")
        results: dict[str, Any] = dict(self._acc.compute())
        if self.dataset is not None:
            results["dataset"] = self.dataset
        if self.split is not None:
            results["split"] = self.split
        results["per_item"] = self.per_item
        return results
