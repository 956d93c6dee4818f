"""Glue of `tools/test.py` inference: build the model, find the data, evaluate one split.

`build_eval_model` builds the config's model for a checkpoint and loads it with the one
strict loader (`mpr_cma.checkpoint.build_and_load`: every kind convert_ckpt.py and
predict.py take), or keeps the random init when asked explicitly. `split_location` maps
(dataset, split) to DATA_ROOT paths of data/README.md,
in our layout or Sa2VA's (`mpr_cma.datasets.layouts`); `evaluate_split` runs
`run_refcoco` / `run_refvos` on it.
"""

import logging
import os
from pathlib import Path

import torch

from mpr_cma.checkpoint.load import build_and_load, build_model
from mpr_cma.checkpoint.resolve import resolve_checkpoint
from mpr_cma.datasets.layouts import find_meta_file, locate_refcoco, locate_video_split
from mpr_cma.datasets.refcoco_format import instances_path, read_refs, refs_path
from mpr_cma.datasets.refvos_format import DATASET_ANNO_ID_RULES
from mpr_cma.engine.config import load_config
from mpr_cma.engine.inference_runner import run_refcoco, run_refvos

logger = logging.getLogger(__name__)

REFCOCO = ("refcoco", "refcoco+", "refcocog")
VIDEO_DIRS = {"davis17": "davis17", "mevis_u": "mevis", "mevis": "mevis"}

__all__ = ["build_eval_model", "evaluate_split", "missing_data", "split_location"]


def eval_device() -> torch.device:
    """cuda:LOCAL_RANK when CUDA is usable, else CPU."""
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        return device
    return torch.device("cpu")


def build_eval_model(config: str | Path, checkpoint: str | Path | None,
                     device: torch.device | None = None, init_seed: int = 0,
                     cfg_options: dict | None = None) -> tuple[torch.nn.Module, dict]:
    """Build `config`'s model and load `checkpoint` into it (None: keep the random init).

    The config is loaded by `load_config` with `cfg_options` (`--cfg-options`) applied.
    The checkpoint path is checked before the (slow) build, so a wrong path fails fast.
    The random init is drawn with `init_seed` (the global RNG state is restored), so an
    untrained model scores the same on every run and every rank holds the same model.

    Returns:
        (model in eval mode on `device`, {"checkpoint", "checkpoint_sha256",
        "checkpoint_kind", "random_init", "init_seed"}).

    Raises:
        FileNotFoundError, CorruptCheckpointError, CheckpointKeyError: see
            `mpr_cma.checkpoint.load_checkpoint` (every message names the file).
    """
    if checkpoint is not None:
        resolve_checkpoint(checkpoint)
    cfg = load_config(config, cfg_options)
    info = {"checkpoint": None, "checkpoint_sha256": None, "checkpoint_kind": None,
            "random_init": checkpoint is None, "init_seed": init_seed}
    if checkpoint is None:
        logger.warning("--random-init: evaluating the untrained model of %s", config)
        model = build_model(cfg.model, pretrained=True, seed=init_seed)
    else:
        model, loaded = build_and_load(cfg.model, checkpoint, seed=init_seed)
        info.update(checkpoint=str(loaded.info.path), checkpoint_sha256=loaded.info.sha256,
                    checkpoint_kind=loaded.info.kind)
    model = model.to(device or torch.device("cpu")).eval()
    return model, info


def split_location(data_root: str | Path, dataset: str, split: str,
                   layout: str = "auto") -> Path:
    """The annotation folder (<ann_root>/<dataset>) for RefCOCO/+/g, the split folder for
    the video datasets, in `layout` ("auto": ours, else Sa2VA's where its files exist)."""
    if dataset in REFCOCO:
        return locate_refcoco(data_root, dataset, layout).ann_root / dataset
    return locate_video_split(data_root, VIDEO_DIRS[dataset], split, layout)


def _expected_files(data_root: str | Path, dataset: str, split: str, layout: str) -> list[Path]:
    folder = split_location(data_root, dataset, split, layout)
    if dataset in REFCOCO:
        return [instances_path(folder.parent, dataset), refs_path(folder.parent, dataset)]
    return [find_meta_file(folder) or folder / "meta_expressions.json"]


def missing_data(data_root: str | Path, dataset: str, split: str,
                 layout: str = "auto") -> str | None:
    """Why (dataset, split) cannot be evaluated from `data_root` (a message), or None.

    Raises:
        CorruptFileError: the refs pickle of a RefCOCO dataset cannot be read.
    """
    files = _expected_files(data_root, dataset, split, layout)
    absent = [str(f) for f in files if not f.is_file()]
    if absent:
        message = f"{dataset} {split}: data not found: {', '.join(absent)}"
        if layout == "auto":
            other = _expected_files(data_root, dataset, split, "sa2va")
            message += f" (nor in Sa2VA's layout: {', '.join(str(f) for f in other)})"
        return message
    if dataset in REFCOCO:
        splits = sorted({ref["split"] for ref in read_refs(files[1])})
        if split not in splits:
            return f"{dataset} {split}: no such split in {files[1]} (has {splits})"
    return None


def evaluate_split(model, dataset: str, split: str, data_root: str | Path, work_dir: Path, *,
                   answer: str | None = None, max_tiles: int = 12, num_key_frames: int = 5,
                   max_new_tokens: int = 2048, save_masks: bool = False,
                   progress: bool = True, layout: str = "auto", gt_rule: str = "union",
                   anno_id_rule: str | None = None) -> dict | None:
    """Predict and score one split; rank 0 gets {"metrics", "per_item", "timings", ...}.

    Args:
        model: the built model on its device.
        dataset, split: e.g. ("refcoco", "testA"), ("mevis_u", "valid_u").
        data_root: DATA_ROOT.
        work_dir: output folder of this split (predictions.json, submission.zip, masks/).
        answer, max_tiles, num_key_frames, max_new_tokens: predict-path options.
        save_masks: write the predicted masks as PNGs under `work_dir`/masks.
        progress: show progress bars.
        layout: data layout, "auto", "mpr_cma" or "sa2va" (`mpr_cma.datasets.layouts`).
        gt_rule: RefCOCO ground truth of several polygons, "union" or "sa2va"
            (`mpr_cma.datasets.refcoco_masks`).
        anno_id_rule: video anno_ids, "auto", "file" or "sa2va"; None = the dataset's
            Sa2VA rule (`DATASET_ANNO_ID_RULES`: "sa2va" for davis17, else "auto").
    """
    masks_dir = work_dir / "masks" if save_masks else None
    common = dict(answer=answer, max_new_tokens=max_new_tokens, save_masks_dir=masks_dir,
                  progress=progress)
    if dataset in REFCOCO:
        return run_refcoco(model, data_root, dataset, split, max_tiles=max_tiles,
                           layout=layout, gt_rule=gt_rule, **common)
    rule = anno_id_rule or DATASET_ANNO_ID_RULES.get(dataset, "auto")
    return run_refvos(model, split_location(data_root, dataset, split, layout), dataset,
                      work_dir, num_key_frames=num_key_frames, anno_id_rule=rule, **common)
