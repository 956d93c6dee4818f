"""Glue of `tools/test.py` inference: build the model, find the data, evaluate one split.

`build_eval_model` builds the config's model without its pretrained base weights (the
checkpoint replaces them all; loading InternVL / SAM-2 first would only cost time) and
loads the checkpoint strictly (`load_eval_checkpoint`), or keeps the random init when asked
explicitly. `split_location` maps (dataset, split) to DATA_ROOT paths of data/README.md;
`evaluate_split` runs `run_refcoco` / `run_refvos` on it.
"""

import logging
import os
from pathlib import Path

import torch
from mmengine.config import Config

from mpr_cma.datasets.refcoco_format import instances_path, read_refs, refs_path
from mpr_cma.engine.eval_checkpoint import load_eval_checkpoint, resolve_checkpoint
from mpr_cma.engine.inference_runner import run_refcoco, run_refvos
from mpr_cma.registry import MODELS

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
                     device: torch.device | None = None,
                     init_seed: int = 0) -> tuple[torch.nn.Module, dict]:
    """Build `config`'s model and load `checkpoint` into it (None: keep the random init).

    The checkpoint path is checked before the (slow) build, so a wrong path fails fast.
    The random init is drawn with `init_seed` (the global RNG state is restored), so an
    untrained model scores the same on every run and every rank holds the same model.

    Returns:
        (model in eval mode on `device`, {"checkpoint", "checkpoint_sha256",
        "checkpoint_kind", "random_init", "init_seed"}).

    Raises:
        FileNotFoundError, CorruptCheckpointError, CheckpointKeyError: see
            `load_eval_checkpoint` (every message names the file).
    """
    if checkpoint is not None:
        resolve_checkpoint(checkpoint)
    cfg = Config.fromfile(str(config))
    model_cfg = cfg.model
    if checkpoint is not None:
        if "mllm_pretrained" in model_cfg:
            model_cfg.mllm_pretrained = None
        if "ckpt_path" in model_cfg.get("grounding", {}):
            model_cfg.grounding.ckpt_path = None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        model = MODELS.build(model_cfg)
    info = {"checkpoint": None, "checkpoint_sha256": None, "checkpoint_kind": None,
            "random_init": checkpoint is None, "init_seed": init_seed}
    if checkpoint is None:
        logger.warning("--random-init: evaluating the untrained model of %s", config)
    else:
        loaded = load_eval_checkpoint(model, checkpoint)
        info.update(checkpoint=str(loaded.path), checkpoint_sha256=loaded.sha256,
                    checkpoint_kind=loaded.kind)
    model = model.to(device or torch.device("cpu")).eval()
    return model, info


def split_location(data_root: str | Path, dataset: str, split: str) -> Path:
    """DATA_ROOT/<dataset> for RefCOCO/+/g, the split folder for the video datasets."""
    if dataset in REFCOCO:
        return Path(data_root) / dataset
    return Path(data_root) / VIDEO_DIRS[dataset] / split


def missing_data(data_root: str | Path, dataset: str, split: str) -> str | None:
    """Why (dataset, split) cannot be evaluated from `data_root` (a message), or None."""
    if dataset in REFCOCO:
        files = [instances_path(data_root, dataset), refs_path(data_root, dataset)]
    else:
        files = [split_location(data_root, dataset, split) / "meta_expressions.json"]
    absent = [str(f) for f in files if not f.is_file()]
    if absent:
        return f"{dataset} {split}: data not found: {', '.join(absent)}"
    if dataset in REFCOCO:
        splits = sorted({ref["split"] for ref in read_refs(files[1])})
        if split not in splits:
            return f"{dataset} {split}: no such split in {files[1]} (has {splits})"
    return None


def evaluate_split(model, dataset: str, split: str, data_root: str | Path, work_dir: Path, *,
                   answer: str | None = None, max_tiles: int = 12, num_key_frames: int = 5,
                   max_new_tokens: int = 2048, save_masks: bool = False,
                   progress: bool = True) -> dict | None:
    """Predict and score one split; rank 0 gets {"metrics", "per_item", "timings", ...}.

    Args:
        model: the built model on its device.
        dataset, split: e.g. ("refcoco", "testA"), ("mevis_u", "valid_u").
        data_root: DATA_ROOT.
        work_dir: output folder of this split (predictions.json, submission.zip, masks/).
        answer, max_tiles, num_key_frames, max_new_tokens: predict-path options.
        save_masks: write the predicted masks as PNGs under `work_dir`/masks.
        progress: show progress bars.
    """
    masks_dir = work_dir / "masks" if save_masks else None
    common = dict(answer=answer, max_new_tokens=max_new_tokens, save_masks_dir=masks_dir,
                  progress=progress)
    if dataset in REFCOCO:
        return run_refcoco(model, data_root, dataset, split, max_tiles=max_tiles, **common)
    return run_refvos(model, split_location(data_root, dataset, split), dataset, work_dir,
                      num_key_frames=num_key_frames, **common)
