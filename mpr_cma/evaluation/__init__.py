"""Evaluation: exact DAVIS 2017 J / F metrics and the benchmarks' aggregation protocols."""

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

__all__ = [
    "DEFAULT_BOUND_TH",
    "MEVIS_PROTOCOL",
    "REF_DAVIS17_PROTOCOL",
    "RefSegAccumulator",
    "aggregate_expressions",
    "annotator_average",
    "boundary_f_measure",
    "boundary_map",
    "boundary_radius",
    "expression_scores",
    "region_similarity",
]
