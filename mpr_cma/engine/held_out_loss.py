"""The training loss of a model on held-out samples: did training learn anything at all?

`held_out_loss` builds the first RefCOCO-layout training dataset of a config on another split
(e.g. "val"), takes its first `count` samples (seeded, so every call sees the same
conversations, objects and tiles), and returns the model's loss terms on them, with the
same loss path as training (collate, data preprocessor, `mode="loss"`; point sampling
seeded). A trained model has a lower loss than its untrained init long before it
segments well enough to score: `make demo --quick` checks that (scripts/run_demo.py).
"""

from pathlib import Path

import torch
from mmengine.config import Config

from mpr_cma.checkpoint.load import build_and_load, build_model
from mpr_cma.datasets import sa2va_collate
from mpr_cma.registry import DATASETS

__all__ = ["held_out_loss"]


def _refcoco_datasets(cfg: Config) -> list[dict]:
    """The config's first RefCOCO-layout training dataset (the benchmark's; the demo's extra
    attribute root after it has no held-out split)."""
    dataset = cfg.train_dataloader.dataset
    parts = dataset.get("datasets", [dataset])
    found = [dict(d) for d in parts if d.get("type") == "RefCOCODataset"]
    if not found:
        raise ValueError("held_out_loss: the config trains on no RefCOCODataset")
    return found[:1]


def held_out_loss(cfg: Config, weights: str | Path | None, split: str = "val",
                  count: int = 8, init_seed: int = 0) -> dict[str, float]:
    """Loss terms of `cfg`'s model on `count` samples of the RefCOCO split `split`.

    Args:
        cfg: a config from `load_config` (its data root must hold `split`).
        weights: a checkpoint of any kind (`mpr_cma.checkpoint.build_and_load`), or None
            for the untrained init of `init_seed` (as tools/test.py).
        split: the RefCOCO split to read. count: samples (one batch).

    Returns:
        {term: float} as the model's loss dict, plus "loss" (their sum).
    """
    datasets = [DATASETS.build({**d, "split": split, "seed": 0})
                for d in _refcoco_datasets(cfg)]
    samples = [s for d in datasets for s in (d[i] for i in range(min(count, len(d))))]
    samples = samples[:count]
    if not samples:
        raise ValueError(f"held_out_loss: no {split} sample")
    if weights is None:
        model = build_model(cfg.model, pretrained=False, seed=init_seed)
    else:
        model = build_and_load(cfg.model, weights, seed=init_seed)[0]
    pad = model.tokenizer.pad_token_id
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        batch = model.data_preprocessor(sa2va_collate(samples, pad), True)
        terms = {k: float(v) for k, v in model(**batch, mode="loss").items()}
    return {**terms, "loss": sum(terms.values())}
