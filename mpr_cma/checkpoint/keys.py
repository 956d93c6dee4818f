"""The strict key check every loader shares."""

from collections.abc import Iterable, Mapping
from pathlib import Path

from torch import Tensor, nn

from mpr_cma.checkpoint.errors import CheckpointKeyError


def check_state(expected: Mapping[str, Tensor], state: Mapping[str, Tensor], file: str | Path,
                may_miss: Iterable[str] = (), note: str = "") -> list[str]:
    """Check `state` against the model's `expected` state dict (names and shapes).

    Args:
        expected: the model's `state_dict()` (meta tensors are fine: shapes only).
        state: the checkpoint's state dict, in the model's key names.
        file: the checkpoint, for the message.
        may_miss: model keys the checkpoint may lack (their values come from elsewhere).
        note: added to the error message (why other keys may not be missing).

    Returns:
        The model keys that are missing (all of them in `may_miss`).

    Raises:
        CheckpointKeyError: other missing keys, unexpected keys or shape mismatches.
    """
    allowed = set(may_miss)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k} checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
                  for k, v in state.items() if k in expected and v.shape != expected[k].shape]
    refused = [k for k in missing if k not in allowed]
    if refused or unexpected or mismatched:
        raise CheckpointKeyError(file, refused, unexpected, mismatched, note)
    return missing


def load_strict(model: nn.Module, state: Mapping[str, Tensor], file: str | Path,
                may_miss: Iterable[str] = (), note: str = "") -> list[str]:
    """`check_state`, then copy `state` into `model`; keys in `may_miss` that the
    checkpoint lacks keep the model's values. Returns those keys."""
    missing = check_state(model.state_dict(), state, file, may_miss, note)
    model.load_state_dict(dict(state), strict=not missing)
    return missing
