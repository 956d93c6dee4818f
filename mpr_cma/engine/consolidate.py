"""Training checkpoints -> one consolidated state dict, and back into a model.

Accepted inputs (`read_checkpoint`):
- a DeepSpeed checkpoint directory (`iter_N.pth/` of `AtomicDeepSpeedStrategy`):
  ZeRO-1/2 store the full module weights (the training dtype, bf16 or fp32) in
  `mp_rank_00_model_states.pt` {"module": state_dict}; ZeRO-3 stores only placeholders
  there, so its weights are rebuilt from the optimizer shards with DeepSpeed's
  `zero_to_fp32` (also on request for ZeRO-1/2: `fp32_master=True` gives the fp32 master
  weights of a bf16 run);
- a work dir (its `last_checkpoint` pointer, or its latest complete `iter_N.pth`);
- an mmengine checkpoint file {"state_dict": ..., "meta": ...} (`save_optimizer=False`),
  a DeepSpeed `*model_states.pt` file, or a plain state dict.

Frozen parameters may be absent (DeepSpeed's `exclude_frozen_parameters`): `complete_state`
fills them from a model built from the config (its pretrained weights, or its random init
when the config has none) and reports every filled key.
"""

import copy
import glob
import json
import os.path as osp
import pickle
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.utils import import_modules_from_strings
from torch import Tensor, nn

from mpr_cma.engine.checkpoint import POINTER_FILE, find_latest_checkpoint
from mpr_cma.engine.config import load_config
from mpr_cma.models.checkpoint import (
    CONFIG_NAME,
    INDEX_NAME,
    WEIGHTS_NAME,
    CorruptCheckpointError,
    LoadReport,
    load_sa2va_hf,
)
from mpr_cma.models.mllm.internvl import CheckpointMismatchError

MODEL_STATES = "mp_rank_00_model_states.pt"
ZERO3_MODEL_STATES = "zero_pp_rank_0_mp_rank_00_model_states.pt"
_TORCH_LOAD_ERRORS = (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError,
                      zipfile.BadZipFile, AttributeError, ImportError, KeyError)


@dataclass
class Consolidated:
    """A checkpoint read into one state dict.

    Attributes:
        state_dict: {model key: CPU tensor} ("module." prefixes removed).
        path: the file or DeepSpeed directory it was read from.
        kind: "deepspeed", "mmengine" or "state_dict".
        zero_stage: the ZeRO stage of a DeepSpeed checkpoint (None otherwise / unknown).
        world_size: data-parallel ranks that wrote it (DeepSpeed only).
        weights: "module" (the module weights as trained) or "fp32_master" (zero_to_fp32).
        meta: the checkpoint's mmengine `meta` (iteration, seed, cfg text, ...), or {}.
    """

    state_dict: dict[str, Tensor]
    path: Path
    kind: str
    zero_stage: int | None = None
    world_size: int | None = None
    weights: str = "module"
    meta: dict = field(default_factory=dict)


def torch_load(path: str | Path) -> object:
    """`torch.load` on CPU; an unreadable file raises `CorruptCheckpointError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    try:
        # Training checkpoints hold mmengine meta (numpy RNG states, config text): not
        # loadable with weights_only=True. Only load checkpoints you trust.
        return torch.load(path, map_location="cpu", weights_only=False)
    except _TORCH_LOAD_ERRORS as err:
        raise CorruptCheckpointError(f"cannot read checkpoint file {path}: {err}") from err


def _strip_module_prefix(state: dict) -> dict[str, Tensor]:
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def _tensors_only(state: dict, path: Path) -> dict[str, Tensor]:
    bad = [k for k, v in state.items() if not torch.is_tensor(v)]
    if bad:
        raise CorruptCheckpointError(f"{path}: state dict entries that are not tensors: "
                                     f"{bad[:5]}{' ...' if len(bad) > 5 else ''}")
    return {k: v.cpu() for k, v in _strip_module_prefix(state).items()}


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file or DeepSpeed tag dir; a work dir resolves to its latest checkpoint.

    Raises:
        FileNotFoundError: nothing usable at `path` (named).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.is_file():
        return path
    if glob.glob(str(path / "*model_states.pt")):
        return path
    latest = find_latest_checkpoint(str(path))
    if latest is None and (path / POINTER_FILE).is_file():
        latest = (path / POINTER_FILE).read_text().strip()
    if latest is None or not osp.exists(latest):
        raise FileNotFoundError(f"{path}: not a DeepSpeed checkpoint directory (no "
                                f"*model_states.pt) and no complete checkpoint in it")
    return Path(latest)


def _read_deepspeed(tag_dir: Path, fp32_master: bool) -> Consolidated:
    model_file = tag_dir / MODEL_STATES
    zero3 = not model_file.is_file() and (tag_dir / ZERO3_MODEL_STATES).is_file()
    states = torch_load(tag_dir / (ZERO3_MODEL_STATES if zero3 else MODEL_STATES))
    if not isinstance(states, dict) or "module" not in states:
        raise CorruptCheckpointError(f"{model_file}: no 'module' entry (not DeepSpeed model "
                                     "states)")
    ds_config = states.get("ds_config") or {}
    stage = (ds_config.get("zero_optimization") or {}).get("stage", 3 if zero3 else None)
    world = states.get("dp_world_size")
    meta = states.get("meta") or {}
    if zero3 or fp32_master:
        state = _zero_to_fp32(tag_dir)
        return Consolidated(state, tag_dir, "deepspeed", stage, world, "fp32_master", meta)
    module = states["module"]
    if not isinstance(module, dict):
        raise CorruptCheckpointError(f"{model_file}: 'module' is not a state dict")
    return Consolidated(_tensors_only(module, model_file), tag_dir, "deepspeed", stage, world,
                        "module", meta)


def _zero_to_fp32(tag_dir: Path) -> dict[str, Tensor]:
    """fp32 weights from the ZeRO optimizer shards (any stage), via DeepSpeed's own tool."""
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    shards = sorted(tag_dir.glob("*optim_states.pt"))
    if not shards:
        raise FileNotFoundError(f"{tag_dir}: no ZeRO optimizer shards (*optim_states.pt) to "
                                "rebuild fp32 weights from")
    for shard in shards:  # name the broken file instead of DeepSpeed's generic error
        if shard.stat().st_size == 0 or not zipfile.is_zipfile(shard):
            raise CorruptCheckpointError(f"cannot read checkpoint file {shard}: not a torch "
                                         "zip archive (truncated or corrupted)")
    try:
        state = get_fp32_state_dict_from_zero_checkpoint(str(tag_dir.parent), tag=tag_dir.name)
    except _TORCH_LOAD_ERRORS as err:
        raise CorruptCheckpointError(f"cannot rebuild fp32 weights from {tag_dir}: {err}"
                                     ) from err
    return {k: v.detach().cpu() for k, v in _strip_module_prefix(dict(state)).items()}


def read_checkpoint(path: str | Path, fp32_master: bool = False) -> Consolidated:
    """Read any training checkpoint into one CPU state dict (see the module docstring).

    Args:
        path: DeepSpeed tag dir, work dir, mmengine .pth file or state-dict file.
        fp32_master: rebuild fp32 weights from the ZeRO optimizer shards (always done for
            ZeRO-3) instead of reading the module weights.

    Raises:
        FileNotFoundError: the path or a file it needs does not exist (named).
        CorruptCheckpointError: a file cannot be parsed or has no state dict (named).
    """
    path = resolve_checkpoint(path)
    if path.is_dir():
        return _read_deepspeed(path, fp32_master)
    obj = torch_load(path)
    if not isinstance(obj, dict):
        raise CorruptCheckpointError(f"{path}: expected a dict, got {type(obj).__name__}")
    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    for key, kind in (("state_dict", "mmengine"), ("module", "deepspeed"),
                      ("model", "state_dict")):
        if isinstance(obj.get(key), dict):
            return Consolidated(_tensors_only(obj[key], path), path, kind, meta=meta)
    return Consolidated(_tensors_only(obj, path), path, "state_dict")


@dataclass
class FillReport:
    """Keys of a model that a consolidated state dict did not hold, filled from the model.

    Attributes:
        filled: model keys taken from the model built from the config (excluded frozen
            parameters): its pretrained weights, or its random init.
        ignored: checkpoint keys the model does not have (only when allowed).
    """

    filled: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def complete_state(model: nn.Module, state: dict[str, Tensor], allow_missing: bool = True,
                   allow_unexpected: bool = False) -> tuple[dict[str, Tensor], FillReport]:
    """A full state dict of `model`: `state`, plus the model's own tensors for missing keys.

    Args:
        model: the model built from the checkpoint's config.
        state: consolidated checkpoint state (model key names).
        allow_missing: fill missing keys from `model` (else they are an error).
        allow_unexpected: ignore checkpoint keys the model lacks (else an error).

    Returns:
        (state dict with every key of `model`, report).

    Raises:
        CheckpointMismatchError: missing / unexpected keys (when not allowed) or shape
            mismatches, listed.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                  for k, v in state.items() if k in own and v.shape != own[k].shape]
    if mismatched or (missing and not allow_missing) or (unexpected and not allow_unexpected):
        raise CheckpointMismatchError([] if allow_missing else missing,
                                      [] if allow_unexpected else unexpected, mismatched)
    full = {k: state[k] if k in state else own[k] for k in own}
    if missing:
        print_log(f"{len(missing)} model keys are not in the checkpoint (excluded frozen "
                  "parameters?); taken from the model built from the config",
                  logger="current")
    return full, FillReport(filled=missing, ignored=unexpected)


def summarize_state(state: dict[str, Tensor], depth: int = 2) -> dict:
    """Counts for printing: keys, parameters, dtypes, and parameters per key prefix.

    Returns:
        {"keys": int, "numel": int, "dtypes": {dtype: keys}, "prefixes": {prefix: numel}}
        with prefixes of `depth` dot-separated parts.
    """
    dtypes: dict[str, int] = {}
    prefixes: dict[str, int] = {}
    for key, value in state.items():
        dtypes[str(value.dtype)] = dtypes.get(str(value.dtype), 0) + 1
        prefix = ".".join(key.split(".")[:depth])
        prefixes[prefix] = prefixes.get(prefix, 0) + value.numel()
    return {"keys": len(state), "numel": sum(v.numel() for v in state.values()),
            "dtypes": dtypes, "prefixes": prefixes}


# ---------------------------------------------------------------------- models
def is_hf_folder(path: str | Path) -> bool:
    """A folder of Sa2VA-layout safetensors weights (single file or index)."""
    path = Path(path)
    return path.is_dir() and any((path / n).is_file() for n in (WEIGHTS_NAME, INDEX_NAME))


def stored_model_config(folder: str | Path) -> dict | None:
    """The build config `save_sa2va_hf` stored in `mpr_cma_config.json`, else None."""
    file = Path(folder) / CONFIG_NAME
    if not file.is_file():
        return None
    try:
        return json.loads(file.read_text()).get("model_config")
    except json.JSONDecodeError as err:
        raise CorruptCheckpointError(f"cannot read {file}: {err}") from err


def build_model(model_cfg: dict, pretrained: bool = True, tokenizer: str | None = None,
                device: str | torch.device = "cpu", seed: int = 0) -> nn.Module:
    """Build the model of a config (`cfg.model`), optionally without its pretrained weights.

    Args:
        model_cfg: the model's config dict.
        pretrained: load the config's pretrained weights (`mllm_pretrained`,
            `grounding.ckpt_path`); False sets them to None (random init).
        tokenizer: replace the config's tokenizer (e.g. the folder of an HF export).
        device: "meta" to get key names and shapes only.
        seed: seed of the random init (the global RNG state is restored afterwards).
    """
    import mpr_cma.models  # noqa: F401  (registers the model classes)
    from mpr_cma.registry import MODELS

    cfg = copy.deepcopy(dict(model_cfg))
    if not pretrained:
        cfg["mllm_pretrained"] = None
        if isinstance(cfg.get("grounding"), dict):
            cfg["grounding"] = {**cfg["grounding"], "ckpt_path": None}
    if tokenizer is not None:
        cfg["tokenizer"] = str(tokenizer)
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(seed)
        return MODELS.build(cfg)


def load_model_config(config: str | Path | None = None, meta: dict | None = None,
                      cfg_options: dict | None = None) -> Config:
    """The effective config (`load_config`) of a file, else of a checkpoint's `meta["cfg"]`.

    `custom_imports` are imported (failures only warn), so project models register.

    Args:
        config: a config file.
        meta: a training checkpoint's meta (its "cfg" text is the resolved config).
        cfg_options: `--cfg-options` overrides ({"dotted.key": value}).

    Raises:
        ValueError: neither is available.
    """
    if config is not None:
        cfg = load_config(config, cfg_options, import_custom_modules=False)
    elif meta and isinstance(meta.get("cfg"), str):
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / "checkpoint_cfg.py"
            file.write_text(meta["cfg"])
            cfg = load_config(file, cfg_options, import_custom_modules=False)
    else:
        raise ValueError("no config: pass --config (the checkpoint does not store one)")
    if cfg.get("custom_imports"):
        imports = dict(cfg.custom_imports)
        imports["allow_failed_imports"] = True
        import_modules_from_strings(**imports)
    return cfg


def load_weights(model: nn.Module, path: str | Path, fp32_master: bool = False
                 ) -> tuple[Consolidated | LoadReport, FillReport | None]:
    """Load any checkpoint into `model`: an HF folder (`load_sa2va_hf`) or a training one.

    Missing keys of a training checkpoint (excluded frozen parameters) keep the model's
    own values and are reported; unexpected or mis-shaped keys are an error.

    Returns:
        (LoadReport, None) for an HF folder; (Consolidated, FillReport) otherwise.
    """
    if is_hf_folder(path):
        return load_sa2va_hf(model, path), None
    found = read_checkpoint(path, fp32_master=fp32_master)
    full, fill = complete_state(model, found.state_dict)
    model.load_state_dict(full, strict=True)
    return found, fill


__all__ = ["Consolidated", "FillReport", "build_model", "complete_state", "is_hf_folder",
           "load_model_config", "load_weights", "read_checkpoint", "resolve_checkpoint",
           "stored_model_config", "summarize_state", "torch_load"]
