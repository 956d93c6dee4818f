"""Load the weights to evaluate into a built `Sa2VAMBA`: HF folder, DeepSpeed or .pth.

`tools/test.py --checkpoint PATH` accepts three kinds (`resolve_checkpoint` tells them apart):

- "hf": a folder in the Sa2VA-1B HF layout (`model.safetensors` or a sharded index), e.g. a
  Sa2VA release or `tools/convert_ckpt.py` output; loaded with `load_sa2va_hf`.
- "deepspeed": a DeepSpeed checkpoint folder of our training (`iter_N.pth/`, weights in
  `mp_rank_00_model_states.pt` = {"module": state_dict}), or a training work dir (its latest
  complete checkpoint, as `find_latest_checkpoint` picks it for resuming).
- "pth": one mmengine / torch file, {"state_dict": ...}, {"module": ...} or a plain state dict.

Loading is strict: missing or unexpected keys are an error listing them (keys of a DDP
"module." wrapper are unwrapped first); shape mismatches are an error naming the key. A
missing path or an unreadable file is an error naming the file. The sha256 recorded in
results.json is that of the weights file (for a sharded HF folder: of its shard files read
in order, one digest).
"""

import hashlib
import logging
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from mpr_cma.engine.checkpoint import find_latest_checkpoint
from mpr_cma.models.checkpoint import (
    INDEX_NAME,
    WEIGHTS_NAME,
    CorruptCheckpointError,
    load_sa2va_hf,
)

logger = logging.getLogger(__name__)

DEEPSPEED_MODEL_FILE = "mp_rank_00_model_states.pt"
_SHOWN_KEYS = 10

__all__ = ["CheckpointInfo", "CheckpointKeyError", "load_eval_checkpoint", "resolve_checkpoint",
           "sha256_of_files"]


class CheckpointKeyError(ValueError):
    """Strict loading failed: the message names the file and lists the offending keys."""


@dataclass
class CheckpointInfo:
    """A resolved checkpoint.

    Attributes:
        kind: "hf", "deepspeed" or "pth".
        path: the checkpoint (folder or file) that is loaded.
        weights: the file(s) holding the weights (hashed into `sha256`).
    """

    kind: str
    path: Path
    weights: list[Path]

    @property
    def sha256(self) -> str:
        return sha256_of_files(self.weights)


def sha256_of_files(files: list[Path]) -> str:
    """One sha256 over the bytes of `files`, in order."""
    digest = hashlib.sha256()
    for path in files:
        with open(path, "rb") as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _hf_weights(folder: Path) -> list[Path]:
    if (folder / WEIGHTS_NAME).is_file():
        return [folder / WEIGHTS_NAME]
    return sorted(p for p in folder.glob("model-*-of-*.safetensors"))


def resolve_checkpoint(path: str | Path) -> CheckpointInfo:
    """Tell which kind of checkpoint `path` is (see the module docstring).

    Raises:
        FileNotFoundError: `path` does not exist, or a work dir holds no complete checkpoint.
        CorruptCheckpointError: a folder that is none of the known layouts.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.is_file():
        return CheckpointInfo("pth", path, [path])
    if (path / DEEPSPEED_MODEL_FILE).is_file():
        return CheckpointInfo("deepspeed", path, [path / DEEPSPEED_MODEL_FILE])
    if (path / WEIGHTS_NAME).is_file() or (path / INDEX_NAME).is_file():
        weights = _hf_weights(path)
        if not weights:
            raise FileNotFoundError(f"{path / INDEX_NAME}: no model-*-of-*.safetensors shard")
        return CheckpointInfo("hf", path, weights)
    if (path / "last_checkpoint").is_file() or any(path.glob("iter_*.pth")):
        latest = find_latest_checkpoint(str(path))
        if latest is None:
            raise FileNotFoundError(f"work dir {path}: no complete checkpoint (iter_N.pth)")
        logger.info("work dir %s: evaluating its latest checkpoint %s", path, latest)
        return resolve_checkpoint(latest)
    raise CorruptCheckpointError(
        f"{path}: not a checkpoint folder (expected {WEIGHTS_NAME} or {INDEX_NAME} of an HF "
        f"folder, {DEEPSPEED_MODEL_FILE} of a DeepSpeed checkpoint, or a training work dir)"
    )


def _read_state_dict(file: Path) -> dict[str, Tensor]:
    """The model state dict inside a DeepSpeed / mmengine / plain torch file."""
    try:
        # Our own training files hold non-tensor metadata (RNG states), hence full unpickling:
        # evaluate checkpoints you trust.
        obj = torch.load(file, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile,
            ValueError) as err:
        raise CorruptCheckpointError(f"{file}: cannot read the checkpoint ({err})") from err
    if isinstance(obj, dict):
        for key in ("module", "state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(
            isinstance(v, Tensor) for v in obj.values()):
        raise CorruptCheckpointError(
            f"{file}: no state dict found (expected {{'module' | 'state_dict': {{name: "
            f"tensor}}}} or {{name: tensor}})")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN_KEYS])
    return shown + (f" (+{len(keys) - _SHOWN_KEYS} more)" if len(keys) > _SHOWN_KEYS else "")


def load_state_dict_strict(model: nn.Module, state: dict[str, Tensor], file: Path) -> None:
    """`model.load_state_dict(state)`, with errors naming `file` and listing the keys.

    Raises:
        CheckpointKeyError: missing / unexpected keys, or shape mismatches.
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(f"{k} checkpoint {tuple(state[k].shape)} vs model "
                        f"{tuple(expected[k].shape)}"
                        for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    problems = [f"{what} {len(keys)} keys: {_listing(keys)}" for what, keys in
                (("missing", missing), ("unexpected", unexpected), ("mismatched", mismatched))
                if keys]
    if problems:
        raise CheckpointKeyError(f"{file}: checkpoint does not match the model; "
                                 + "; ".join(problems))
    model.load_state_dict(state, strict=True)


def load_eval_checkpoint(model: nn.Module, path: str | Path) -> CheckpointInfo:
    """Resolve `path` and load its weights into `model` strictly.

    Args:
        model: a built (materialised) `Sa2VAMBA`, on CPU or its device.
        path: HF folder, DeepSpeed checkpoint folder / training work dir, or a .pth file.

    Returns:
        The `CheckpointInfo` (kind, path, weight files; `.sha256`).

    Raises:
        FileNotFoundError, CorruptCheckpointError: see `resolve_checkpoint`, or a file that
            cannot be read (the message names it).
        CheckpointKeyError / Sa2VACheckpointMismatchError: key or shape mismatches.
    """
    info = resolve_checkpoint(path)
    if info.kind == "hf":
        report = load_sa2va_hf(model, info.path, strict=True)
        if report.new_initialised:
            logger.warning("%s: %d parameters not in the checkpoint keep their init (LoRA A, "
                           "or the new MBA/TMC parameters of a plain Sa2VA release)",
                           info.path, len(report.new_initialised))
    else:
        load_state_dict_strict(model, _read_state_dict(info.weights[0]), info.weights[0])
    logger.info("loaded %s checkpoint %s", info.kind, info.path)
    return info
