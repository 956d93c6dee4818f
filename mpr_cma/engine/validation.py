"""Validation during training: a subset of val splits through the benchmark's predict path.

Configs switch it on with `val_interval > 0` (configs/_base_/default_runtime.py), which
sets mmengine's three validation fields:

- `val_dataloader`: `ReferValDataset` (items of RefCOCO/+/g sentences or referring-video
  expressions under a data root in the layout of data/README.md, `max_items` per split
  spread evenly over it), batches are plain lists (`refer_val_collate`);
- `val_cfg`: `ReferValLoop`, mmengine's ValLoop whose step runs `predict_items`
  (`predict_image_sentences` for the sentences of one image in a batch, which encodes the
  image once, and `predict_video`; greedy answers, as tools/test.py; `answer=`
  teacher-forces one) on the model inside the DeepSpeed / DDP wrapper;
- `val_evaluator`: `mpr_cma.evaluation.ReferSegMetric` (cIoU / gIoU, J&F from the arrays).

The train loop runs it every `val_interval` iterations and after the last one; the
metrics are logged by the LoggerHook with the losses (scalars.json, TensorBoard) as
`<dataset>_<split>/cIoU`, `.../J&F`. Items are sharded over ranks by mmengine's sampler
and gathered by the metric. J&F is averaged over expressions (the MeViS protocol; for
davis17 it is not the benchmark's annotator average: use tools/test.py for that number).
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from mmengine.registry import LOOPS
from mmengine.runner import ValLoop
from torch.utils.data import Dataset

from mpr_cma.datasets import RefVOSSplit, load_refcoco, ref_mask
from mpr_cma.datasets import sentence_items as refcoco_sentence_items
from mpr_cma.engine.evaluate import REFCOCO, missing_data, split_location
from mpr_cma.engine.hooks import unwrap_model
from mpr_cma.models.inference import predict_image_sentences, predict_video
from mpr_cma.models.mllm.preprocess import open_image
from mpr_cma.registry import DATASETS, FUNCTIONS

__all__ = ["ReferValDataset", "ReferValLoop", "predict_items", "refer_val_collate", "spread"]


def spread(total: int, count: int | None) -> list[int]:
    """`count` indices spread evenly over range(total) (all when count is None or larger)."""
    if count is None or count >= total:
        return list(range(total))
    if count < 1:
        raise ValueError(f"max_items must be at least 1 (or None), got {count}")
    return sorted({int(round(i * (total - 1) / max(count - 1, 1))) for i in range(count)})


@DATASETS.register_module()
class ReferValDataset(Dataset):
    """Validation items of several splits: images with a sentence, videos with an expression.

    Args:
        data_root: DATA_ROOT (refcoco/, refcoco+/, refcocog/, coco2014/, davis17/, mevis/).
        splits: [{"dataset": "refcoco" | "refcoco+" | "refcocog" | "davis17" | "mevis_u",
            "split": "val" | "testA" | "valid_u" | ...}, ...].
        max_items: items per split, spread evenly over it; None = all.

    Items: {"source": "<dataset>_<split>", "kind": "image" | "video", "key", "text", and
    "image" (PIL) + "image_path" (str) + "gt" (H, W) bool, or "frames" (list of PIL) +
    "gt" (T, H, W) bool}.

    Raises:
        FileNotFoundError: a split's data is missing (the message names the files).
        ValueError: a split without items, or the server-scored MeViS valid split.
    """

    def __init__(self, data_root: str | Path, splits: Sequence[dict],
                 max_items: int | None = 50):
        self.data_root = Path(data_root)
        self.items: list[tuple] = []
        for entry in splits:
            dataset, split = entry["dataset"], entry["split"]
            if dataset == "mevis":
                raise ValueError("mevis valid has no public masks; validate on mevis_u "
                                 "valid_u")
            reason = missing_data(self.data_root, dataset, split)
            if reason is not None:
                raise FileNotFoundError(f"validation split {reason}")
            source = f"{dataset}_{split}"
            if dataset in REFCOCO:
                found = refcoco_sentence_items(load_refcoco(self.data_root, dataset,
                                                            split=split))
                chosen = [("image", source, found[i]) for i in spread(len(found), max_items)]
            else:
                vos = RefVOSSplit(split_location(self.data_root, dataset, split))
                found = list(vos.iter_expressions())
                chosen = [("video", source, (vos, found[i]))
                          for i in spread(len(found), max_items)]
            if not chosen:
                raise ValueError(f"validation split {source} under {self.data_root} has no "
                                 "item")
            self.items += chosen
        self.metainfo = {"sources": sorted({source for _, source, _ in self.items})}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        kind, source, item = self.items[index]
        if kind == "image":
            item_id, record, sentence = item
            return {"source": source, "kind": kind, "key": item_id, "text": sentence,
                    "image": open_image(record.image_path),
                    "image_path": str(record.image_path), "gt": ref_mask(record)}
        vos, expression = item
        names = vos.frames(expression.video)
        return {"source": source, "kind": kind,
                "key": f"{expression.video}/{expression.exp_id}", "text": expression.exp,
                "frames": [open_image(vos.frame_path(expression.video, n)) for n in names],
                "gt": vos.expression_masks(expression.video, expression.exp_id)}


@FUNCTIONS.register_module()
def refer_val_collate(items: list[dict]) -> list[dict]:
    """Validation batches are the items themselves (images of any size, PIL frames)."""
    return list(items)


@torch.no_grad()
def predict_items(model, items: Sequence[dict], answer: str | None = None,
                  max_new_tokens: int = 32, max_tiles: int = 12,
                  num_key_frames: int = 5) -> list[dict]:
    """`ReferValDataset` items -> [{"source", "key", "kind", "pred", "gt"}], in item order.

    The image items of one image (same "image_path") go through one
    `predict_image_sentences` call, which encodes the image once for all of them; each
    prediction equals `predict_image`'s for its item alone. Videos: `predict_video` each.

    Args:
        model: the unwrapped Sa2VA model. items: a validation batch.
        answer, max_new_tokens, max_tiles, num_key_frames: as `predict_image` /
            `predict_video`.

    Returns:
        One record per item; "pred" is bool, (H, W) for images and (T, H, W) for videos.
    """
    common = dict(answer=answer, max_new_tokens=max_new_tokens)
    preds: dict[int, np.ndarray] = {}
    by_image: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        if item["kind"] == "image":
            by_image.setdefault(item["image_path"], []).append(index)
        else:
            out = predict_video(model, item["frames"], item["text"],
                                num_key_frames=num_key_frames, **common)
            preds[index] = out["masks"]
    for group in by_image.values():
        outs = predict_image_sentences(model, items[group[0]]["image"],
                                       [items[i]["text"] for i in group],
                                       max_tiles=max_tiles, **common)
        for index, out in zip(group, outs, strict=True):
            preds[index] = out["mask"]
    return [{"source": item["source"], "key": item["key"], "kind": item["kind"],
             "pred": np.asarray(preds[index], dtype=bool), "gt": item["gt"]}
            for index, item in enumerate(items)]


@LOOPS.register_module()
class ReferValLoop(ValLoop):
    """mmengine's ValLoop with the predict path of tools/test.py as its step.

    Args:
        runner, dataloader, evaluator: as ValLoop.
        answer: teacher-forced answer (None: greedy generation, the benchmark protocol).
        max_new_tokens, max_tiles, num_key_frames: as `predict_image` / `predict_video`.
    """

    def __init__(self, runner, dataloader, evaluator, answer: str | None = None,
                 max_new_tokens: int = 32, max_tiles: int = 12, num_key_frames: int = 5):
        super().__init__(runner, dataloader, evaluator)
        self.answer = answer
        self.max_new_tokens = max_new_tokens
        self.max_tiles = max_tiles
        self.num_key_frames = num_key_frames

    @torch.no_grad()
    def run_iter(self, idx: int, data_batch: Sequence[dict]) -> None:
        self.runner.call_hook("before_val_iter", batch_idx=idx, data_batch=data_batch)
        outputs = predict_items(unwrap_model(self.runner.model), data_batch,
                                answer=self.answer, max_new_tokens=self.max_new_tokens,
                                max_tiles=self.max_tiles, num_key_frames=self.num_key_frames)
        self.evaluator.process(data_samples=outputs, data_batch=None)
        self.runner.call_hook("after_val_iter", batch_idx=idx, data_batch=data_batch,
                              outputs=outputs)
