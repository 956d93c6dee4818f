"""Reading weight files: torch files, HF safetensors folders (single or sharded), digests.

Every reader raises FileNotFoundError naming a missing file and `CorruptCheckpointError`
naming a file that exists but cannot be parsed.
"""

import hashlib
import json
import pickle
import zipfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from mpr_cma.checkpoint.errors import CheckpointKeyError, CorruptCheckpointError

WEIGHTS_NAME = "model.safetensors"
# The build config and summary that `save_sa2va_hf` writes beside the weights.
CONFIG_NAME = "mpr_cma_config.json"
INDEX_NAME = "model.safetensors.index.json"
# DeepSpeed's module weights of a ZeRO-1/2 checkpoint (ZeRO-3: placeholders only).
MODEL_STATES = "mp_rank_00_model_states.pt"
ZERO3_MODEL_STATES = "zero_pp_rank_0_mp_rank_00_model_states.pt"
TORCH_LOAD_ERRORS = (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError,
                     zipfile.BadZipFile, AttributeError, ImportError, KeyError)


def torch_load(path: str | Path, weights_only: bool = False) -> object:
    """`torch.load` on CPU.

    Args:
        path: the file.
        weights_only: torch's safe loader (SAM-2 releases); training checkpoints hold
            mmengine meta (numpy RNG states, config text) and need False: only load
            checkpoints you trust.

    Raises:
        FileNotFoundError: no such file. CorruptCheckpointError: it cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except TORCH_LOAD_ERRORS as err:
        raise CorruptCheckpointError(f"cannot read checkpoint file {path}: {err}") from err


def _load_safetensors(path: Path) -> dict[str, Tensor]:
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise CorruptCheckpointError(f"cannot read safetensors file {path}: {err}") from err


def hf_weight_files(folder: str | Path) -> list[Path]:
    """The weight files of an HF folder: `model.safetensors`, or the index's shards in order.

    Raises:
        FileNotFoundError: no weights, or a shard the index lists is missing (named).
        CorruptCheckpointError: the index cannot be parsed.
    """
    folder = Path(folder)
    index, single = folder / INDEX_NAME, folder / WEIGHTS_NAME
    if index.is_file():
        shards = sorted(set(_weight_map(index).values()))
        for shard in shards:
            if not (folder / shard).is_file():
                raise FileNotFoundError(f"shard listed in {index} not found: {folder / shard}")
        return [folder / shard for shard in shards]
    if single.is_file():
        return [single]
    raise FileNotFoundError(f"no weights in {folder}: expected {single.name} or {index.name}")


def _weight_map(index: Path) -> dict[str, str]:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise CorruptCheckpointError(f"cannot read shard index {index}: {err!r}") from err
    if not isinstance(weight_map, dict):
        raise CorruptCheckpointError(f"cannot read shard index {index}: 'weight_map' is not "
                                     "a mapping")
    return weight_map


def read_safetensors_folder(folder: str | Path) -> dict[str, Tensor]:
    """Read an HF folder's `model.safetensors`, or its shards via the index (InternVL,
    Sa2VA releases and `tools/convert_ckpt.py` output alike).

    Raises:
        FileNotFoundError: the folder, the weights or a listed shard is missing (named).
        CorruptCheckpointError: a file cannot be parsed (named).
        CheckpointKeyError: the index lists keys that its shards lack.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"checkpoint folder not found: {folder}")
    state: dict[str, Tensor] = {}
    for file in hf_weight_files(folder):
        state.update(_load_safetensors(file))
    index = folder / INDEX_NAME
    if index.is_file():
        absent = sorted(set(_weight_map(index)) - set(state))
        if absent:
            raise CheckpointKeyError(index, missing=absent, note="listed in the index, not "
                                     "in its shards")
    return state


def sha256_of_files(files: list[Path]) -> str:
    """One sha256 over the bytes of `files`, in order."""
    digest = hashlib.sha256()
    for path in files:
        with open(path, "rb") as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
