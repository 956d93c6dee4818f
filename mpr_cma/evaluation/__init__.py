"""Evaluation: exact DAVIS 2017 J / F metrics, the benchmarks' aggregation protocols, the
RefCOCO and referring-video evaluators, the metric of the validation loop during training
(`ReferSegMetric`), and the MeViS submission writer. Scores arrays and
files only; never imports models."""

from mpr_cma.evaluation.aggregation import (
    MEVIS_PROTOCOL,
    REF_DAVIS17_PROTOCOL,
    RefSegAccumulator,
    aggregate_expressions,
    annotator_average,
    expression_scores,
)
from mpr_cma.evaluation.metrics import (
    DEFAULT_BOUND_TH,
    boundary_f_measure,
    boundary_map,
    boundary_radius,
    region_similarity,
)
from mpr_cma.evaluation.refcoco import RefCOCOEvaluator
from mpr_cma.evaluation.refvos import (
    PredictionError,
    RefVOSEvaluator,
    check_prediction_index,
    evaluate_predictions,
    open_predictions,
)
from mpr_cma.evaluation.submission import check_submission, write_submission
from mpr_cma.evaluation.val_metrics import ReferSegMetric

__all__ = [
    "DEFAULT_BOUND_TH",
    "MEVIS_PROTOCOL",
    "REF_DAVIS17_PROTOCOL",
    "PredictionError",
    "RefCOCOEvaluator",
    "ReferSegMetric",
    "RefSegAccumulator",
    "RefVOSEvaluator",
    "aggregate_expressions",
    "annotator_average",
    "boundary_f_measure",
    "boundary_map",
    "boundary_radius",
    "check_prediction_index",
    "check_submission",
    "evaluate_predictions",
    "expression_scores",
    "open_predictions",
    "region_similarity",
    "write_submission",
]
