"""Yardsticks: scores of a predictor that needs no model, to read a model's scores against.

"Every object" answers each expression with the union of every annotated object of its
image (instances.json), or of every object some expression of its video refers to (the
referring-video formats annotate only those): a segmenter that finds the objects but
cannot tell which one the expression means. A model has learned to refer only where it
beats this; one that scores about the same has learned objectness. The yardstick is
scored by the same evaluators as model predictions.
"""

from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mpr_cma.datasets.refcoco_format import (
    instances_path,
    load_refcoco,
    read_instances,
    ref_mask,
    segmentation_to_mask,
)
from mpr_cma.datasets.refcoco_format import sentence_items as refcoco_sentence_items
from mpr_cma.datasets.refvos_format import RefVOSSplit
from mpr_cma.evaluation.refcoco import RefCOCOEvaluator
from mpr_cma.evaluation.refvos_metric import RefVOSEvaluator


def refcoco_every_object(data_root: str | Path, dataset: str = "refcoco", split: str = "val",
                         progress: bool = False) -> dict:
    """cIoU / gIoU of answering every sentence of a RefCOCO-style split with the union of
    all annotated objects (instances.json) of its image.

    Args:
        data_root: DATA_ROOT with <dataset>/instances.json and refs(...).p.
        dataset, split: as `load_refcoco`.
        progress: show a tqdm bar.

    Returns:
        `RefCOCOEvaluator.compute()` without "per_item" ({"cIoU", "gIoU", ...}).
    """
    records = load_refcoco(data_root, dataset, split=split)
    instances = read_instances(instances_path(data_root, dataset))
    by_image: dict[int, list] = defaultdict(list)
    for ann in instances["annotations"]:
        by_image[ann["image_id"]].append(ann["segmentation"])
    evaluator = RefCOCOEvaluator(dataset=dataset, split=split)
    unions: dict[int, np.ndarray] = {}
    for item_id, record, _ in tqdm(refcoco_sentence_items(records), desc="every object",
                                   disable=not progress):
        if record.image_id not in unions:
            union = np.zeros((record.height, record.width), dtype=bool)
            for segmentation in by_image[record.image_id]:
                union |= segmentation_to_mask(segmentation, record.height, record.width)
            unions[record.image_id] = union
        evaluator.process(unions[record.image_id], ref_mask(record), item_id)
    metrics = evaluator.compute()
    metrics.pop("per_item")
    return metrics


def refvos_every_object(split_root: str | Path, dataset: str = "mevis_u") -> dict:
    """J / F / J&F of answering every expression of a referring-video split with the union,
    per frame, of every object any expression of the video refers to.

    Returns:
        `RefVOSEvaluator.compute_metrics()` without "per_expression".
    """
    split = RefVOSSplit(split_root)
    evaluator = RefVOSEvaluator(split, dataset=dataset)
    samples = []
    for video in sorted({e.video for e in split.iter_expressions()}):
        expressions = list(split.expressions(video).values())
        union = None
        for expression in expressions:
            masks = split.expression_masks(video, expression.exp_id)
            union = masks if union is None else union | masks
        samples += [{"video": video, "exp_id": e.exp_id, "pred_masks": union}
                    for e in expressions]
    evaluator.process(None, samples)
    metrics = evaluator.compute_metrics(evaluator.results)
    metrics.pop("per_expression")
    return metrics
