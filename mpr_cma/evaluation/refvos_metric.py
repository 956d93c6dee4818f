"""`RefVOSEvaluator`: the referring-video scoring of :mod:`mpr_cma.evaluation.refvos` as an
mmengine metric (its own module, so scoring saved predictions never imports mmengine or
torch)."""

from collections.abc import Sequence

from mmengine.evaluator import BaseMetric

from mpr_cma.datasets.refvos_format import RefVOSSplit
from mpr_cma.evaluation.metrics import DEFAULT_BOUND_TH
from mpr_cma.evaluation.refvos import score_expression, summarize
from mpr_cma.registry import METRICS

__all__ = ["RefVOSEvaluator"]


@METRICS.register_module()
class RefVOSEvaluator(BaseMetric):
    """Per-expression J / F of referring-video predictions (mmengine ``BaseMetric`` style).

    ``process`` scores each expression as it arrives (so only per-frame scores travel
    between ranks); ``compute_metrics`` aggregates them with the MeViS protocol.

    Args:
        split: The ground truth (a split with a mask_dict).
        dataset: "mevis_u" or "davis17"; selects the protocol note in the results.
        bound_th: Boundary tolerance of F.
        collect_device, prefix: As mmengine's ``BaseMetric``.
    """

    default_prefix = "refvos"

    def __init__(
        self,
        split: RefVOSSplit,
        dataset: str = "mevis_u",
        bound_th: float = DEFAULT_BOUND_TH,
        collect_device: str = "cpu",
        prefix: str | None = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not split.has_masks:
            raise ValueError(f"split {split.root} has no mask_dict: it cannot be scored here")
        self.split = split
        self.dataset = dataset
        self.bound_th = bound_th

    def process(self, data_batch: object, data_samples: Sequence[dict]) -> None:
        """Score a batch of expressions.

        Args:
            data_batch: Unused (the ground truth comes from the split).
            data_samples: dicts with "video", "exp_id", "pred_masks" (bool (T, H, W), T and
                (H, W) as the video's frames) and optionally "missing_frames" (count).
        """
        for sample in data_samples:
            self.results.append(score_expression(self.split, sample, self.bound_th))

    def compute_metrics(self, results: list) -> dict:
        """Aggregate: {"J", "F", "J&F", "num_expressions", "protocol", "protocol_note",
        "per_expression": {"video/exp_id": {"J", "F", "J&F", "missing_frames"}}}."""
        return summarize(results, self.dataset)
