"""The two errors of checkpoint loading; each names the file."""

_SHOWN_KEYS = 10


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN_KEYS])
    return shown + (f" (+{len(keys) - _SHOWN_KEYS} more)" if len(keys) > _SHOWN_KEYS else "")


class CorruptCheckpointError(ValueError):
    """A checkpoint file exists but cannot be parsed (the message names the file)."""


class CheckpointKeyError(ValueError):
    """Strict loading failed: the message names the file and lists the offending keys.

    Attributes:
        file: the checkpoint file or folder.
        missing: model keys the checkpoint lacks (and may not lack).
        unexpected: checkpoint keys the model does not have.
        mismatched: "key checkpoint (shape) vs model (shape)" entries.
    """

    def __init__(self, file, missing=(), unexpected=(), mismatched=(), note: str = ""):
        self.file = file
        self.missing, self.unexpected = sorted(missing), sorted(unexpected)
        self.mismatched = sorted(mismatched)
        parts = [f"{label} ({len(keys)}): {_listing(keys)}" for label, keys in
                 (("missing keys", self.missing), ("unexpected keys", self.unexpected),
                  ("shape mismatches", self.mismatched)) if keys]
        message = f"{file}: checkpoint does not match the model; " + "; ".join(parts)
        super().__init__(message + (f" ({note})" if note else ""))
