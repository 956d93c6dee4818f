"""What a checkpoint path is: the one `resolve_checkpoint` of every tool.

Kinds:
- "hf": a folder in the Sa2VA-1B HF layout (`model.safetensors` or a sharded index): a
  Sa2VA release or `tools/convert_ckpt.py to-hf` output;
- "deepspeed": a DeepSpeed checkpoint folder of our training (`iter_N.pth/` holding
  `*model_states.pt`);
- "pth": one mmengine / torch file ({"state_dict": ...}, {"module": ...} or a state dict).
An mmengine work dir resolves to its latest complete checkpoint (as `--resume auto` picks
it), then to one of the kinds above.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

from mpr_cma.checkpoint.errors import CorruptCheckpointError
from mpr_cma.checkpoint.files import (
    INDEX_NAME,
    MODEL_STATES,
    WEIGHTS_NAME,
    ZERO3_MODEL_STATES,
    hf_weight_files,
    sha256_of_files,
)

logger = logging.getLogger(__name__)
POINTER_FILE = "last_checkpoint"


@dataclass
class CheckpointInfo:
    """A resolved checkpoint.

    Attributes:
        kind: "hf", "deepspeed" or "pth".
        path: the checkpoint (folder or file) that is loaded.
        weights: the file(s) holding the weights (hashed into `sha256`).
        given: the path the user gave (a work dir, or `path` itself).
    """

    kind: str
    path: Path
    weights: list[Path]
    given: Path

    @property
    def sha256(self) -> str:
        return sha256_of_files(self.weights)


def is_hf_folder(path: str | Path) -> bool:
    """A folder of Sa2VA-layout safetensors weights (single file or index)."""
    path = Path(path)
    return path.is_dir() and any((path / n).is_file() for n in (WEIGHTS_NAME, INDEX_NAME))


def _deepspeed_weights(folder: Path) -> list[Path]:
    if (folder / MODEL_STATES).is_file():
        return [folder / MODEL_STATES]
    # ZeRO-3: the weights live in the optimizer shards.
    return [folder / ZERO3_MODEL_STATES, *sorted(folder.glob("*optim_states.pt"))]


def _latest_in_work_dir(folder: Path) -> Path | None:
    from mpr_cma.engine.checkpoint import find_latest_checkpoint

    latest = find_latest_checkpoint(str(folder))
    if latest is None and (folder / POINTER_FILE).is_file():
        latest = (folder / POINTER_FILE).read_text().strip()
    return Path(latest) if latest and Path(latest).exists() else None


def resolve_checkpoint(path: str | Path) -> CheckpointInfo:
    """Tell which kind of checkpoint `path` is (see the module docstring).

    Raises:
        FileNotFoundError: `path` does not exist, or a work dir holds no complete checkpoint.
        CorruptCheckpointError: a folder that is none of the known layouts.
    """
    given = path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.is_dir() and not is_hf_folder(path) and not any(path.glob("*model_states.pt")):
        is_work_dir = (path / POINTER_FILE).is_file() or any(path.glob("iter_*.pth")) or any(
            path.glob("epoch_*.pth"))
        if not is_work_dir:
            raise CorruptCheckpointError(
                f"{path}: not a checkpoint folder (expected {WEIGHTS_NAME} or {INDEX_NAME} of "
                f"an HF folder, *model_states.pt of a DeepSpeed checkpoint, or a training "
                "work dir)")
        latest = _latest_in_work_dir(path)
        if latest is None:
            raise FileNotFoundError(f"{path}: a training work dir with no complete checkpoint")
        logger.info("work dir %s: its latest checkpoint is %s", path, latest)
        path = latest
    if path.is_dir() and is_hf_folder(path):
        return CheckpointInfo("hf", path, hf_weight_files(path), given)
    if path.is_dir():
        return CheckpointInfo("deepspeed", path, _deepspeed_weights(path), given)
    return CheckpointInfo("pth", path, [path], given)
