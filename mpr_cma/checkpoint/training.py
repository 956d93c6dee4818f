"""Training checkpoints -> one consolidated CPU state dict.

Accepted (`read_checkpoint`, after `resolve_checkpoint`):
- a DeepSpeed checkpoint folder (`iter_N.pth/` of `AtomicDeepSpeedStrategy`): ZeRO-1/2
  store the full module weights (the training dtype, bf16 or fp32) in
  `mp_rank_00_model_states.pt` {"module": state_dict}; ZeRO-3 stores only placeholders
  there, so its weights are rebuilt from the optimizer shards with DeepSpeed's
  `zero_to_fp32` (also on request for ZeRO-1/2: `fp32_master=True` gives the fp32 master
  weights of a bf16 run);
- a work dir (its latest complete checkpoint);
- an mmengine checkpoint file {"state_dict": ..., "meta": ...}, a DeepSpeed
  `*model_states.pt` file, or a plain state dict.
"""

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from mpr_cma.checkpoint.errors import CorruptCheckpointError
from mpr_cma.checkpoint.files import (
    MODEL_STATES,
    TORCH_LOAD_ERRORS,
    ZERO3_MODEL_STATES,
    torch_load,
)
from mpr_cma.checkpoint.resolve import CheckpointInfo, resolve_checkpoint


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


def _read_deepspeed(tag_dir: Path, fp32_master: bool) -> Consolidated:
    model_file = tag_dir / MODEL_STATES
    zero3 = not model_file.is_file() and (tag_dir / ZERO3_MODEL_STATES).is_file()
    states_file = tag_dir / (ZERO3_MODEL_STATES if zero3 else MODEL_STATES)
    states = torch_load(states_file)
    if not isinstance(states, dict) or "module" not in states:
        raise CorruptCheckpointError(f"{states_file}: no 'module' entry (not DeepSpeed model "
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
    except TORCH_LOAD_ERRORS as err:
        raise CorruptCheckpointError(f"cannot rebuild fp32 weights from {tag_dir}: {err}"
                                     ) from err
    return {k: v.detach().cpu() for k, v in _strip_module_prefix(dict(state)).items()}


def read_checkpoint(path: str | Path | CheckpointInfo, fp32_master: bool = False
                    ) -> Consolidated:
    """Read any training checkpoint into one CPU state dict (see the module docstring).

    Args:
        path: DeepSpeed folder, work dir, mmengine .pth file or state-dict file, or its
            `resolve_checkpoint` result.
        fp32_master: rebuild fp32 weights from the ZeRO optimizer shards (always done for
            ZeRO-3) instead of reading the module weights.

    Raises:
        FileNotFoundError: the path or a file it needs does not exist (named).
        CorruptCheckpointError: a file cannot be parsed or has no state dict (named), or
            the path is an HF folder (not a training checkpoint).
    """
    info = path if isinstance(path, CheckpointInfo) else resolve_checkpoint(path)
    if info.kind == "hf":
        raise CorruptCheckpointError(f"{info.path}: an HF folder, not a training checkpoint")
    if info.kind == "deepspeed":
        return _read_deepspeed(info.path, fp32_master)
    obj = torch_load(info.path)
    if not isinstance(obj, dict):
        raise CorruptCheckpointError(f"{info.path}: expected a dict, got {type(obj).__name__}")
    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    for key, kind in (("state_dict", "mmengine"), ("module", "deepspeed"),
                      ("model", "state_dict")):
        if isinstance(obj.get(key), dict):
            return Consolidated(_tensors_only(obj[key], info.path), info.path, kind, meta=meta)
    return Consolidated(_tensors_only(obj, info.path), info.path, "state_dict")


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
