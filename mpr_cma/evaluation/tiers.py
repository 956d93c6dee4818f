"""Per-tier scores of the synthetic benchmark, beside two yardsticks (issue 13).

The synthetic data (`mpr_cma.datasets.synthetic`) labels every expression with its tier in
``tiers.json`` (attribute, spatial, size, ordinal on the RefCOCO-layout images; motion on
the MeViS-layout videos). This module scores the masks that ``tools/test.py --save-masks``
wrote, per tier, and the same items answered by two predictors that need no model:

- "every object": the union of every object of the image (as `yardsticks`);
- "right shape, any instance": the union of every object of the referred object's shape
  (its COCO category), i.e. a model that reads the noun but not which instance is meant.

A tier is "solved" only where the model beats both. Image tiers are scored by cIoU / gIoU
(`RefCOCOEvaluator`); the video tier by J&F (`RefVOSEvaluator`).

`refcoco_mask_shares` says where a model's predicted pixels go instead: on the referred
object, on other objects of its shape, on other objects of its colour, on the rest, or on
the background (which distractor the model confuses the target with).
"""

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from mpr_cma.datasets.refcoco_format import (
    instances_path,
    load_refcoco,
    read_instances,
    ref_mask,
    segmentation_to_mask,
)
from mpr_cma.datasets.refcoco_format import sentence_items as refcoco_sentence_items
from mpr_cma.datasets.refvos_format import RefVOSSplit
from mpr_cma.datasets.synthetic import TIERS_FILE
from mpr_cma.evaluation.refcoco import RefCOCOEvaluator
from mpr_cma.evaluation.refvos_metric import RefVOSEvaluator

PREDICTORS = ("model", "every_object", "right_shape")

# Where a predicted pixel can lie, relative to the referred object (refcoco_mask_shares).
SHARES = ("target", "same_shape", "same_colour", "other_object", "background")

__all__ = ["PREDICTORS", "SHARES", "read_tiers", "refcoco_mask_shares", "refcoco_tier_scores",
           "refvos_tier_scores"]


def read_tiers(data_root: str | Path) -> dict:
    """The tiers.json of a synthetic data root (see `mpr_cma.datasets.synthetic`)."""
    path = Path(data_root) / TIERS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: regenerate the data with "
                                "scripts/make_synthetic_data.py (it writes the tier labels)")
    return json.loads(path.read_text())


def _png(path: Path, size: tuple[int, int]) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"predicted mask not found: {path} (run tools/test.py "
                                "with --save-masks)")
    mask = np.asarray(Image.open(path)) > 0
    if mask.shape != size:
        raise ValueError(f"{path}: mask size {mask.shape} differs from the image's {size}")
    return mask


def refcoco_tier_scores(data_root: str | Path, masks_dir: str | Path | None,
                        dataset: str = "refcoco", split: str = "val") -> dict:
    """cIoU / gIoU per tier of a RefCOCO-layout split, for the model and the yardsticks.

    Args:
        data_root: synthetic DATA_ROOT (refcoco/, tiers.json).
        masks_dir: `<item_id>.png` masks of `tools/test.py --save-masks` (WORK/masks);
            None scores the yardsticks only.
        dataset, split: as `load_refcoco`.

    Returns:
        {predictor: {tier: {"cIoU", "gIoU", "num_items"}}}, predictors of PREDICTORS
        ("model" only with `masks_dir`), tiers in data order plus "all".
    """
    tiers = read_tiers(data_root)["refcoco"]
    records = load_refcoco(data_root, dataset, split=split)
    instances = read_instances(instances_path(data_root, dataset))
    objects: dict[int, list] = defaultdict(list)
    for ann in instances["annotations"]:
        objects[ann["image_id"]].append((ann["category_id"], ann["segmentation"]))
    predictors = PREDICTORS if masks_dir is not None else PREDICTORS[1:]
    evaluators: dict = defaultdict(dict)
    for item_id, record, tier in _tiered_sentences(records, tiers):
        hw = (record.height, record.width)
        gt = ref_mask(record)
        preds = {"every_object": _union(objects[record.image_id], None, hw),
                 "right_shape": _union(objects[record.image_id], record.category_id, hw)}
        if masks_dir is not None:
            preds["model"] = _png(Path(masks_dir) / f"{item_id}.png", hw)
        for name in predictors:
            for key in (tier, "all"):
                evaluator = evaluators[name].setdefault(
                    key, RefCOCOEvaluator(dataset=dataset, split=split))
                evaluator.process(preds[name], gt, item_id)
    return {name: {tier: _summary(ev.compute()) for tier, ev in by_tier.items()}
            for name, by_tier in evaluators.items()}


def refcoco_mask_shares(data_root: str | Path, masks_dir: str | Path, dataset: str = "refcoco",
                        split: str = "val") -> dict:
    """Where the predicted pixels of a RefCOCO-layout split go, per tier.

    Each predicted pixel counts once, by what lies under it: the referred object
    ("target"), another object of its shape ("same_shape", any colour), another object of
    its colour but another shape ("same_colour"), any other object ("other_object") or no
    object ("background"). Objects are the visible masks of instances.json (they do not
    overlap); colours come from the data root's scenes.json.

    Args:
        data_root: synthetic DATA_ROOT (refcoco/, tiers.json, scenes.json).
        masks_dir: `<item_id>.png` masks of `tools/test.py --save-masks`.
        dataset, split: as `load_refcoco`.

    Returns:
        {tier: {share: fraction of the tier's predicted pixels, for each of SHARES,
        "predicted_pixels", "target_pixels", "num_items"}}, tiers in data order plus "all".
    """
    tiers = read_tiers(data_root)["refcoco"]
    scenes_path = Path(data_root) / "scenes.json"
    if not scenes_path.is_file():
        raise FileNotFoundError(f"{scenes_path} not found: regenerate the data with "
                                "scripts/make_synthetic_data.py (it writes the scenes)")
    colour_of = {obj["id"]: obj["colour"]
                 for scene in json.loads(scenes_path.read_text())["images"].values()
                 for obj in scene["objects"]}
    records = load_refcoco(data_root, dataset, split=split)
    instances = read_instances(instances_path(data_root, dataset))
    objects: dict[int, list] = defaultdict(list)
    for ann in instances["annotations"]:
        if ann["id"] not in colour_of:
            raise KeyError(f"{scenes_path}: no object {ann['id']} (annotation of image "
                           f"{ann['image_id']}); the data root's files do not belong together")
        objects[ann["image_id"]].append((ann["id"], ann["category_id"], ann["segmentation"]))
    counts: dict = defaultdict(lambda: defaultdict(int))
    for item_id, record, tier in _tiered_sentences(records, tiers):
        hw = (record.height, record.width)
        pred = _png(Path(masks_dir) / f"{item_id}.png", hw)
        target_colour = colour_of[record.ann_id]
        covered = np.zeros(hw, dtype=bool)
        found = defaultdict(int)
        for ann_id, category, segmentation in objects[record.image_id]:
            mask = segmentation_to_mask(segmentation, *hw)
            if ann_id == record.ann_id:
                share = "target"
                found["target_pixels"] += int(mask.sum())
            elif category == record.category_id:
                share = "same_shape"
            elif colour_of[ann_id] == target_colour:
                share = "same_colour"
            else:
                share = "other_object"
            found[share] += int((pred & mask & ~covered).sum())
            covered |= mask
        found["background"] += int((pred & ~covered).sum())
        found["predicted_pixels"] += int(pred.sum())
        for key in (tier, "all"):
            for name, value in found.items():
                counts[key][name] += value
            counts[key]["num_items"] += 1
    return {tier: {**{name: c[name] / max(c["predicted_pixels"], 1) for name in SHARES},
                   "predicted_pixels": c["predicted_pixels"],
                   "target_pixels": c["target_pixels"], "num_items": c["num_items"]}
            for tier, c in counts.items()}


def _tiered_sentences(records: list, tiers: dict):
    """(item_id, record, tier) of every sentence of `records`, its tier from tiers.json's
    "refcoco" labels (one per sentence of a ref, in sentence order).

    Raises:
        KeyError: a ref without a tier for each of its sentences.
    """
    for item_id, record, _ in refcoco_sentence_items(records):
        labels = tiers.get(str(record.ref_id))
        if labels is None or len(labels) != len(record.sent_ids):
            raise KeyError(f"{TIERS_FILE}: no tier for each sentence of ref {record.ref_id}")
        yield item_id, record, labels[record.sent_ids.index(int(item_id.rsplit("_", 1)[1]))]


def _union(objects: list, category: int | None, hw: tuple[int, int]) -> np.ndarray:
    """(H, W) bool union of the image's objects of `category` (None: of all of them)."""
    union = np.zeros(hw, dtype=bool)
    for cat, segmentation in objects:
        if category is None or cat == category:
            union |= segmentation_to_mask(segmentation, *hw)
    return union


def _summary(metrics: dict) -> dict:
    return {"cIoU": metrics["cIoU"], "gIoU": metrics["gIoU"], "num_items": metrics["num_items"]}


def refvos_tier_scores(data_root: str | Path, masks_dir: str | Path | None,
                       split: str = "valid_u", dataset: str = "mevis_u") -> dict:
    """J / F / J&F per tier of a synthetic MeViS-layout split (every expression: motion).

    Args:
        data_root: synthetic DATA_ROOT (mevis/<split>/, scenes.json, tiers.json).
        masks_dir: `<video>/<exp_id>/<frame>.png` masks of `tools/test.py --save-masks`;
            None scores the yardsticks only.
        split: the MeViS-layout split.
        dataset: evaluator name (`RefVOSEvaluator`).

    Returns:
        {predictor: {tier: {"J&F", "J", "F", "num_expressions"}}}, tiers plus "all".
    """
    root = Path(data_root)
    tiers = read_tiers(root)["mevis"][split]
    scenes = json.loads((root / "scenes.json").read_text())["videos"][split]
    refvos = RefVOSSplit(root / "mevis" / split)
    predictors = PREDICTORS if masks_dir is not None else PREDICTORS[1:]
    samples: dict = defaultdict(lambda: defaultdict(list))
    for video in sorted({e.video for e in refvos.iter_expressions()}):
        expressions = refvos.expressions(video)
        shapes = {str(o["id"]): o["shape"] for o in scenes[video]["objects"]}
        frames = refvos.frames(video)
        size = refvos.frame_size(video)
        # Every object some expression refers to (the format annotates only those).
        referred = sorted({a for e in expressions.values() for a in e.anno_ids})
        per_anno = {a: _anno_track(refvos, video, a, len(frames), size) for a in shapes}
        every = np.any([per_anno[a] for a in referred], axis=0)
        for exp_id, expression in expressions.items():
            tier = tiers[video][exp_id]
            wanted = {shapes[a] for a in expression.anno_ids}
            preds = {"every_object": every,
                     "right_shape": np.any([m for a, m in per_anno.items()
                                            if shapes[a] in wanted], axis=0)}
            if masks_dir is not None:
                preds["model"] = np.stack([_png(Path(masks_dir) / video / exp_id
                                                / f"{frame}.png", size) for frame in frames])
            for name in predictors:
                for key in (tier, "all"):
                    samples[name][key].append({"video": video, "exp_id": exp_id,
                                               "pred_masks": preds[name]})
    out: dict = {}
    for name, by_tier in samples.items():
        for tier, items in by_tier.items():
            evaluator = RefVOSEvaluator(refvos, dataset=dataset)
            evaluator.process(None, items)
            metrics = evaluator.compute_metrics(evaluator.results)
            out.setdefault(name, {})[tier] = {
                "J&F": metrics["J&F"], "J": metrics["J"], "F": metrics["F"],
                "num_expressions": len(items)}
    return out


def _anno_track(refvos: RefVOSSplit, video: str, anno_id: str, n_frames: int,
                size: tuple[int, int]) -> np.ndarray:
    """(T, H, W) bool masks of one object (empty where it is absent)."""
    masks = [refvos.anno_mask(video, anno_id, t) for t in range(n_frames)]
    return np.stack([np.zeros(size, bool) if m is None else m for m in masks])
