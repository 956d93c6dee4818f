"""Read the annotation files of the benchmarks, with one clear error for a corrupt file.

A truncated or otherwise unreadable JSON or pickle file (instances.json, refs(unc).p,
meta_expressions.json, mask_dict.json / .pkl, a results.json of predictions) raises
:class:`CorruptFileError`: a ``ValueError`` whose one-line message names the file, what it
should be and the parser's complaint. The tools catch ``ValueError`` and print that line
without a traceback (exit status 1).
"""

import json
import pickle
from pathlib import Path
from typing import Any

__all__ = ["CorruptFileError", "read_json", "read_pickle"]


class CorruptFileError(ValueError):
    """A file that exists but cannot be parsed (truncated, not JSON / not a pickle)."""


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or "no detail"
    return f"{type(err).__name__}: {text}"


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """Parse a JSON file.

    Args:
        path: the file.
        what: what the file is, for the message (e.g. "meta expressions file").

    Raises:
        FileNotFoundError: the file does not exist (named).
        CorruptFileError: it is not valid UTF-8 JSON, e.g. truncated (named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with path.open("rb") as f:
            return json.load(f)
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError
        raise CorruptFileError(
            f"{path}: corrupt {what}, not valid JSON (truncated?) ({_one_line(err)})"
        ) from err


def read_pickle(path: str | Path, what: str = "pickle file") -> Any:
    """Unpickle a file (only files of a trusted dataset directory: pickles run code).

    Raises:
        FileNotFoundError: the file does not exist (named).
        CorruptFileError: it cannot be unpickled, e.g. truncated (named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with path.open("rb") as f:
            return pickle.load(f)
    # Unpickling damaged bytes can fail with almost any exception type (EOFError,
    # UnpicklingError, ValueError, KeyError, ImportError, MemoryError on a bogus length...);
    # each of them means the same thing here: the file is not the pickle it should be.
    except Exception as err:
        raise CorruptFileError(
            f"{path}: corrupt {what}, cannot be unpickled (truncated?) ({_one_line(err)})"
        ) from err
