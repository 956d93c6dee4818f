"""Move a config's datasets to another data root (tools/train.py --data-root).

Configs write `data_root = 'data'` at the top and build every dataset path from it
(`data_root + '/mevis/train'`). mmengine resolves those expressions when the file is read,
so overriding `data_root` with `--cfg-options` changes the variable but none of the paths
built from it. `replace_data_root` rewrites the resolved paths instead: every string field
named `data_root` (at any depth, e.g. in each dataset of a ConcatDataset) that equals the
config's root or lies under it gets the new root as prefix.
"""

from collections.abc import MutableMapping, MutableSequence
from pathlib import PurePosixPath
from typing import Any

from mmengine.config import Config

ROOT_KEY = "data_root"


def _rebase(path: str, old: str, new: str) -> str | None:
    """`path` with prefix `old` replaced by `new`; None when `path` is not under `old`."""
    old_parts = PurePosixPath(old).parts
    parts = PurePosixPath(path).parts
    if parts[: len(old_parts)] != old_parts:
        return None
    return str(PurePosixPath(new, *parts[len(old_parts):]))


def _walk(node: Any, old: str, new: str, changed: list[str], where: str,
          seen: set[int]) -> None:
    if isinstance(node, MutableMapping | MutableSequence):
        # A dict shared by two fields (`dataset={{_base_.train_dataset}}` may resolve to
        # the same object) is rebased once: twice would nest a new root lying under the old.
        if id(node) in seen:
            return
        seen.add(id(node))
    if isinstance(node, MutableMapping):
        for key, value in node.items():
            here = f"{where}.{key}" if where else str(key)
            if key == ROOT_KEY and isinstance(value, str):
                moved = _rebase(value, old, new)
                if moved is not None:
                    node[key] = moved
                    changed.append(here)
            else:
                _walk(value, old, new, changed, here, seen)
    elif isinstance(node, MutableSequence):
        for index, value in enumerate(node):
            _walk(value, old, new, changed, f"{where}[{index}]", seen)


def replace_data_root(cfg: Config, new_root: str) -> list[str]:
    """Point every dataset of `cfg` that reads under `cfg.data_root` at `new_root`, in place.

    Args:
        cfg: a loaded config with a top-level `data_root` string.
        new_root: the folder that replaces it (relative paths stay relative).

    Returns:
        The dotted names of the fields that changed (the top-level `data_root` included).

    Raises:
        KeyError: the config has no top-level `data_root` (the message says so).
        ValueError: no dataset field lies under the config's data root, so the option
            would silently do nothing.
    """
    old = cfg.get(ROOT_KEY)
    if not isinstance(old, str):
        raise KeyError(f"the config has no top-level '{ROOT_KEY}' string to replace "
                       f"(found {old!r}); set the dataset paths with --cfg-options")
    changed: list[str] = []
    seen: set[int] = set()
    for key in list(cfg.keys()):
        if key != ROOT_KEY:
            _walk(cfg[key], old, new_root, changed, key, seen)
    if not changed:
        raise ValueError(f"no dataset 'data_root' field of the config lies under its "
                         f"data_root {old!r}; nothing to replace")
    cfg[ROOT_KEY] = new_root
    return [ROOT_KEY, *changed]
