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
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor, nn

from mpr_cma.engine.consolidate import read_checkpoint
from mpr_cma.engine.consolidate import resolve_checkpoint as resolve_training_checkpoint
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
    if path.is_dir() and ((path / WEIGHTS_NAME).is_file() or (path / INDEX_NAME).is_file()):
        weights = _hf_weights(path)
        if not weights:
            raise FileNotFoundError(f"{path / INDEX_NAME}: no model-*-of-*.safetensors shard")
        return CheckpointInfo("hf", path, weights)
    is_training_dir = (path / "last_checkpoint").is_file() or any(path.glob("iter_*.pth"))
    if path.is_dir() and not (path / DEEPSPEED_MODEL_FILE).is_file() and not is_training_dir:
        raise CorruptCheckpointError(
            f"{path}: not a checkpoint folder (expected {WEIGHTS_NAME} or {INDEX_NAME} of an "
            f"HF folder, {DEEPSPEED_MODEL_FILE} of a DeepSpeed checkpoint, or a training work "
            "dir)")
    # DeepSpeed directories, work dirs (their latest complete checkpoint) and files are
    # resolved the same way as for conversion.
    resolved = resolve_training_checkpoint(path)
    if resolved != path:
        logger.info("work dir %s: evaluating its latest checkpoint %s", path, resolved)
    if resolved.is_dir():
        return CheckpointInfo("deepspeed", resolved, [resolved / DEEPSPEED_MODEL_FILE])
    return CheckpointInfo("pth", resolved, [resolved])


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
        state = read_checkpoint(info.path).state_dict
        load_state_dict_strict(model, state, info.weights[0])
    logger.info("loaded %s checkpoint %s", info.kind, info.path)
    return info
