"""Evaluation: exact DAVIS 2017 J / F metrics, the benchmarks' aggregation protocols, the
RefCOCO and referring-video evaluators, the metric of the validation loop during training
(`ReferSegMetric`), and the MeViS submission writer. Scores arrays and
files only; never imports models.

Names are imported on first use (PEP 562): scoring saved predictions (metrics, refvos,
submission) needs numpy, OpenCV and pycocotools only; the mmengine metrics
(`RefVOSEvaluator`, `ReferSegMetric`) bring mmengine and torch when asked for.
"""

from mpr_cma.lazy_exports import lazy_exports

# name -> submodule
_EXPORTS = {
    "MEVIS_PROTOCOL": "aggregation",
    "REF_DAVIS17_PROTOCOL": "aggregation",
    "RefSegAccumulator": "aggregation",
    "aggregate_expressions": "aggregation",
    "annotator_average": "aggregation",
    "expression_scores": "aggregation",
    "DEFAULT_BOUND_TH": "metrics",
    "boundary_f_measure": "metrics",
    "boundary_map": "metrics",
    "boundary_radius": "metrics",
    "region_and_boundary_pairs": "metrics",
    "region_similarity": "metrics",
    "RefCOCOEvaluator": "refcoco",
    "PredictionError": "refvos",
    "check_prediction_index": "refvos",
    "evaluate_predictions": "refvos",
    "open_predictions": "refvos",
    "RefVOSEvaluator": "refvos_metric",
    "check_submission": "submission",
    "write_submission": "submission",
    "ReferSegMetric": "val_metrics",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
