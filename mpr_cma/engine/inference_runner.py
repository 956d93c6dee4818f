"""Benchmark inference: run the predict path over RefCOCO/+/g or a referring-video split.

Each rank of a torchrun world takes the items i with i % world == rank (`shard_indices`);
predictions (COCO RLE, small) are gathered to rank 0 with `all_gather_object` and put back
in item order (`merge_shards`), and rank 0 scores them with the same evaluation code as
`tools/test.py --eval-only`:

- RefCOCO/+/g: one item per sentence (`sentence_items`), predicted as `predict_image`
  (greedy answer; teacher forcing only with `answer=`), a rank's sentences of one image
  in one `predict_image_sentences` call (`group_by_image`: the image is read and encoded
  once, the results are the same and kept in item order); an answer without [SEG] is an
  empty mask, counted in metrics["no_seg"]; `RefCOCOEvaluator` gives cIoU / gIoU.
- Referring video (davis17, mevis_u, mevis): one item per expression, `predict_video` over
  all frames; rank 0 writes WORK_DIR/predictions.json (the Sa2VA ref_vos_eval.py format
  with RLE masks) and scores it with `evaluate_predictions` (or, for the server-scored
  MeViS valid split, packs and checks the submission zip with `write_submission`).

`save_masks_dir` writes each rank's masks as 0/255 PNGs: `<dir>/<video>/<exp_id>/<frame>.png`
(video) or `<dir>/<item_id>.png` (RefCOCO). Time is accumulated per stage ("data": reading
annotations and images, "model": the predict path, "post_processing": encoding, PNGs,
gathering and scoring) and returned summed over ranks (also per rank).
"""

import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch.distributed as dist
from mmengine.dist import all_gather_object
from tqdm import tqdm

from mpr_cma.datasets import RefVOSSplit, decode_rle, encode_mask, load_refcoco, ref_mask
from mpr_cma.datasets import sentence_items as refcoco_sentence_items
from mpr_cma.evaluation import RefCOCOEvaluator, evaluate_predictions, write_submission
from mpr_cma.evaluation.refvos import RleJsonPredictions
from mpr_cma.evaluation.submission import encode_png
from mpr_cma.models.inference import predict_image_sentences, predict_video
from mpr_cma.models.mllm.preprocess import open_image

logger = logging.getLogger(__name__)

STAGES = ("data", "model", "post_processing")
VIDEO_DATASETS = {"davis17": "davis17", "mevis_u": "mevis", "mevis": "mevis"}

__all__ = ["StageTimer", "group_by_image", "merge_shards", "predict_refcoco_items",
           "run_refcoco", "run_refvos", "shard_indices", "world_info"]


# ---------------------------------------------------------------------- sharding
def world_info() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard_indices(num_items: int, rank: int, world: int) -> list[int]:
    """Indices of the items rank `rank` predicts: i with i % world == rank."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} outside a world of {world}")
    return list(range(rank, num_items, world))


def merge_shards(shards: Sequence[Sequence[Any]]) -> list[Any]:
    """Inverse of `shard_indices`: per-rank lists (rank order) -> the items in item order."""
    world = len(shards)
    total = sum(len(s) for s in shards)
    for rank, shard in enumerate(shards):
        if len(shard) != len(shard_indices(total, rank, world)):
            raise ValueError(f"rank {rank} returned {len(shard)} items; expected "
                             f"{len(shard_indices(total, rank, world))} of {total}")
    return [shards[i % world][i // world] for i in range(total)]


def gather_to_main(items: list[Any]) -> list[Any] | None:
    """Every rank's `items` merged in item order on rank 0 (None on the other ranks)."""
    rank, world = world_info()
    if world == 1:
        return list(items)
    shards = all_gather_object(items)
    return merge_shards(shards) if rank == 0 else None


def group_by_image(items: Sequence[tuple],
                   indices: Sequence[int]) -> list[tuple[Any, list[int]]]:
    """The items `indices` grouped by image: [(image_path, [index, ...]), ...].

    Groups come in the order of their image's first item, indices in their given order,
    so concatenating the groups gives back `indices` when each image's items are
    consecutive. items: `sentence_items` rows (item_id, record, sentence).
    """
    groups: dict[Any, list[int]] = {}
    for index in indices:
        groups.setdefault(items[index][1].image_path, []).append(index)
    return list(groups.items())


# ---------------------------------------------------------------------- timing
class StageTimer:
    """Seconds accumulated per stage (`with timer("model"): ...`)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start

    def summary(self) -> dict[str, Any]:
        """{stage: seconds summed over ranks, "per_rank": [{stage: s}, ...]} (collective)."""
        mine = {s: round(self.seconds.get(s, 0.0), 4) for s in STAGES}
        per_rank = all_gather_object(mine) if world_info()[1] > 1 else [mine]
        total = {s: round(sum(r[s] for r in per_rank), 4) for s in STAGES}
        for stage in STAGES:
            logger.info("stage %-16s %.3f s (summed over %d rank(s))", stage, total[stage],
                        len(per_rank))
        return {**total, "per_rank": per_rank}


def _save_png(path: Path, mask) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(mask))


# ---------------------------------------------------------------------- RefCOCO/+/g
def run_refcoco(model, data_root: str | Path, dataset: str, split: str, *,
                answer: str | None = None, max_tiles: int = 12, max_new_tokens: int = 2048,
                save_masks_dir: Path | None = None, progress: bool = True,
                layout: str = "auto", gt_rule: str = "union") -> dict | None:
    """Predict and score one RefCOCO/+/g split (sharded over the ranks).

    Args:
        model: `Sa2VAMBA` on its device.
        data_root: DATA_ROOT with refcoco/, refcoco+/, refcocog/, coco2014/train2014 (or
            Sa2VA's ref_seg/ and glamm_data/images/coco2014/train2014, see `layout`).
        dataset: "refcoco", "refcoco+" or "refcocog" (umd split for refcocog).
        split: e.g. "val", "testA", "test".
        answer: teacher-forced answer (None: greedy generation, the benchmark setting).
        max_tiles, max_new_tokens: as `predict_image`.
        save_masks_dir: also write the predicted masks as `<dir>/<item_id>.png`.
        progress: show a tqdm bar (rank 0).
        layout: "auto", "mpr_cma" or "sa2va" (`mpr_cma.datasets.layouts.locate_refcoco`).
        gt_rule: ground truth of annotations made of several polygons: "union" (the true
            mask) or "sa2va" (Sa2VA's evaluation), see `mpr_cma.datasets.refcoco_masks`.

    Returns:
        On rank 0 {"metrics", "per_item", "timings"}; None on the other ranks.
    """
    timer = StageTimer()
    rank, world = world_info()
    with timer("data"):
        items = refcoco_sentence_items(load_refcoco(data_root, dataset, split=split,
                                                    layout=layout))
    if not items:
        raise ValueError(f"{data_root}/{dataset}: split {split!r} has no sentence")
    indices = shard_indices(len(items), rank, world)
    preds = predict_refcoco_items(model, items, indices, timer, answer=answer,
                                  max_tiles=max_tiles, max_new_tokens=max_new_tokens,
                                  save_masks_dir=save_masks_dir,
                                  progress=progress and rank == 0,
                                  desc=f"{dataset} {split}")
    with timer("post_processing"):
        merged = gather_to_main(preds)
        result = None if merged is None else _score_refcoco(dataset, split, items, merged,
                                                            gt_rule)
    timings = timer.summary()
    if result is not None:
        result["timings"] = timings
    return result


def predict_refcoco_items(model, items: Sequence[tuple], indices: Sequence[int],
                          timer: StageTimer | None = None, *, answer: str | None = None,
                          max_tiles: int = 12, max_new_tokens: int = 2048,
                          save_masks_dir: Path | None = None, progress: bool = False,
                          desc: str = "refcoco") -> list[dict]:
    """run_refcoco's model loop: predictions of `items[indices]`, in the order of `indices`.

    Each image is read and encoded once for all of its sentences (`group_by_image`,
    `predict_image_sentences`); the predictions are put back in item order, so they are
    those of one `predict_image` call per item.

    Args:
        items: `sentence_items` rows (item_id, record, sentence). indices: the rows to
            predict (a rank's shard). timer: adds "data" / "model" / "post_processing"
            seconds (None: not timed). the others: as `run_refcoco`.

    Returns:
        [{"item_id", "rle" (COCO RLE of the mask), "has_seg", "answer"}] per index.
    """
    timer = timer or StageTimer()
    by_index = {}
    bar = tqdm(total=len(indices), desc=desc, unit="sent", disable=not progress)
    for image_path, group in group_by_image(items, indices):
        with timer("data"):
            image = open_image(image_path)
        with timer("model"):
            outs = predict_image_sentences(model, image, [items[i][2] for i in group],
                                           max_tiles=max_tiles, answer=answer,
                                           max_new_tokens=max_new_tokens)
        with timer("post_processing"):
            for index, out in zip(group, outs, strict=True):
                item_id = items[index][0]
                by_index[index] = {"item_id": item_id, "rle": encode_mask(out["mask"]),
                                   "has_seg": out["has_seg"], "answer": out["answer"]}
                if save_masks_dir is not None:
                    _save_png(save_masks_dir / f"{item_id}.png", out["mask"])
        bar.update(len(group))
    bar.close()
    return [by_index[i] for i in indices]


def _score_refcoco(dataset: str, split: str, items: list, preds: list[dict],
                   gt_rule: str = "union") -> dict:
    evaluator = RefCOCOEvaluator(dataset=dataset, split=split)
    per_item = {}
    for (item_id, record, sentence), pred in zip(items, preds, strict=True):
        if pred["item_id"] != item_id:
            raise RuntimeError(f"gathered prediction {pred['item_id']} in place of {item_id}")
        iou = evaluator.process(decode_rle(pred["rle"]), ref_mask(record, gt_rule), item_id)
        per_item[item_id] = {"iou": iou, "has_seg": pred["has_seg"], "sentence": sentence,
                             "answer": pred["answer"]}
    metrics = evaluator.compute()
    metrics.pop("per_item")
    metrics["no_seg"] = sum(1 for p in preds if not p["has_seg"])
    metrics["gt_rule"] = gt_rule
    return {"metrics": metrics, "per_item": per_item}


# ---------------------------------------------------------------------- referring video
def run_refvos(model, split_root: str | Path, dataset: str, work_dir: Path, *,
               answer: str | None = None, num_key_frames: int = 5, max_new_tokens: int = 2048,
               save_masks_dir: Path | None = None, progress: bool = True,
               anno_id_rule: str = "auto") -> dict | None:
    """Predict and score (or, for "mevis", package) one referring-video split.

    Args:
        model: `Sa2VAMBA` on its device.
        split_root: split folder (JPEGImages/, meta_expressions.json, mask_dict.*; the meta
            may lie in ../meta_expressions/<split>/ as in Sa2VA's Ref-DAVIS17 folder).
        dataset: "davis17", "mevis_u" (scored here) or "mevis" (submission zip).
        work_dir: where rank 0 writes predictions.json (and submission.zip).
        answer, num_key_frames, max_new_tokens: as `predict_video`.
        save_masks_dir: also write `<dir>/<video>/<exp_id>/<frame>.png` (0/255).
        progress: show tqdm bars (rank 0).
        anno_id_rule: "auto", "file" or "sa2va" (`RefVOSSplit`; Sa2VA's Ref-DAVIS17
            evaluation: "sa2va").

    Returns:
        On rank 0 {"metrics", "per_item", "missing", "predictions", "timings"}; None elsewhere.
    """
    timer = StageTimer()
    rank, world = world_info()
    with timer("data"):
        split = RefVOSSplit(split_root, anno_id_rule=anno_id_rule)
        logger.info("%s: %s", split.meta_file, split.describe_anno_ids())
        expressions = list(split.iter_expressions())
    if not expressions:
        raise ValueError(f"{split.meta_file}: no expression")
    if dataset != "mevis" and not split.has_masks:
        raise FileNotFoundError(f"{split.root}: no mask_dict.json/.pkl to score {dataset}")
    preds, cached = [], (None, [])
    for index in tqdm(shard_indices(len(expressions), rank, world), desc=dataset, unit="exp",
                      disable=not progress or rank != 0):
        expression = expressions[index]
        names = split.frames(expression.video)
        with timer("data"):
            if cached[0] != expression.video:  # expressions of a video are consecutive
                cached = (expression.video,
                          [open_image(split.frame_path(expression.video, f)) for f in names])
        with timer("model"):
            out = predict_video(model, cached[1], expression.exp, num_key_frames=num_key_frames,
                                answer=answer, max_new_tokens=max_new_tokens)
        with timer("post_processing"):
            preds.append({"video_id": expression.video, "exp_id": expression.exp_id,
                          "frames": names, "has_seg": out["has_seg"], "answer": out["answer"],
                          "prediction_masks": [encode_mask(m) for m in out["masks"]]})
            if save_masks_dir is not None:
                for name, mask in zip(names, out["masks"], strict=True):
                    _save_png(save_masks_dir / expression.video / expression.exp_id
                              / f"{name}.png", mask)
    with timer("post_processing"):
        merged = gather_to_main(preds)
        result = None if merged is None else _score_refvos(split, dataset, work_dir, merged,
                                                            progress)
    timings = timer.summary()
    if result is not None:
        result["timings"] = timings
    return result


def _score_refvos(split: RefVOSSplit, dataset: str, work_dir: Path, preds: list[dict],
                  progress: bool) -> dict:
    """Write predictions.json, then score it (or pack the MeViS submission) as --eval-only."""
    grouped: dict[str, dict[str, dict]] = {}
    for pred in preds:
        grouped.setdefault(pred["video_id"], {})[pred["exp_id"]] = {
            "frames": pred["frames"], "prediction_masks": pred["prediction_masks"]}
    work_dir.mkdir(parents=True, exist_ok=True)
    pred_file = work_dir / "predictions.json"
    pred_file.write_text(json.dumps(grouped))
    source = RleJsonPredictions(pred_file)
    no_seg = sum(1 for p in preds if not p["has_seg"])
    answers = {f"{p['video_id']}/{p['exp_id']}": {"has_seg": p["has_seg"],
                                                  "answer": p["answer"]} for p in preds}
    if dataset == "mevis":
        report = write_submission(split, source, work_dir / "submission.zip", False, progress)
        metrics = {"submission": report["zip"], "complete": True,
                   "num_expressions": report["num_expressions"],
                   "num_frames": report["num_frames"],
                   "missing_frames": report["missing"]["num_frames"], "no_seg": no_seg}
        return {"metrics": metrics, "per_item": answers, "missing": report["missing"],
                "predictions": str(pred_file)}
    scores = evaluate_predictions(split, source, dataset, False, progress)
    missing = scores.pop("missing")
    per_item = scores.pop("per_expression")
    for key, value in per_item.items():
        value.update(answers.get(key, {}))
    metrics = {**scores, "missing_frames": missing["num_frames"], "no_seg": no_seg}
    return {"metrics": metrics, "per_item": per_item, "missing": missing,
            "predictions": str(pred_file)}
