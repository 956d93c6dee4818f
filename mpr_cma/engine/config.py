"""Load a config with late-bound references: every top-level knob reaches every use.

mmengine resolves `{{_base_.x}}` and any arithmetic of a base file when it reads that
file, so a leaf (or `--cfg-options`) that sets `x` changes only its own copy. Our configs
write references as strings instead and `load_config` resolves them once, after every
file and every command-line override is merged:

- `'${name}'` (the whole string) takes the value of the top-level field `name` (any type:
  a dict, a number, None); `'${expr}'` the value of a Python expression over top-level
  fields, e.g. `'${warmup_ratio * max_epochs}'`.
- `'${data_root}/mevis/train'`: a reference inside a longer string is interpolated.
- `'$${'` is a literal `'${'`.

Writing to a nested place that holds a pure-name reference writes that field, so every
setting has one source: a leaf's `model = dict(grounding=dict(mba=dict(top_k=8)))` over a base
whose `model.grounding.mba` is `'${mba}'` merges `top_k=8` into the top-level `mba`, and
`--cfg-options train_cfg.max_epochs=2` sets `max_epochs` (so the schedule follows). A
value that is itself a reference re-points the place instead; a dict with `_delete_=True`
replaces its source whole.

Loading: each file's own assignments are executed without its bases (module names
starting with `_` are file-local helpers, not fields), its `_base_` files are loaded the
same way, and the file is merged over them with mmengine's merge (`_delete_` works as in
mmengine) after the redirects above. `{{_base_.x}}` is refused: it is what made knobs dead.
"""

import ast
import copy
import re
import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mmengine.config import Config, ConfigDict
from mmengine.utils import import_modules_from_strings

from mpr_cma.engine.references import (
    ConfigReferenceError,
    is_reference,
    pure_name,
    resolve_references,
)

__all__ = ["RUNNER_FIELDS", "SA2VA_NUM_KEY_FRAMES", "ConfigReferenceError", "config_num_key_frames",
           "load_config", "parse_cfg_options", "resolve_references", "unused_fields"]

# Sa2VA's video rule shows the MLLM the first min(5, T) frames (configs/_base_/default_runtime.py).
SA2VA_NUM_KEY_FRAMES = 5

BASE_KEY = "_base_"
DELETE_KEY = "_delete_"
# Top-level fields read by mmengine's (Flexible)Runner or by mpr_cma.engine.runner.
RUNNER_FIELDS = frozenset({
    "auto_scale_lr", "cfg", "compile", "custom_hooks", "custom_imports", "data_preprocessor",
    "default_hooks", "default_scope", "env_cfg", "experiment_name", "launcher", "load_from",
    "log_level", "log_processor", "model", "model_wrapper_cfg", "optim_wrapper",
    "param_scheduler", "randomness", "resume", "runner_type", "strategy", "test_cfg",
    "test_dataloader", "test_evaluator", "train_cfg", "train_dataloader", "val_cfg",
    "val_dataloader", "val_evaluator", "visualizer", "work_dir",
})
# ---------------------------------------------------------------------- redirects
def _dict_source(cfg: Mapping, name: str, where: str) -> str:
    """The field a dict written through `'${name}'` merges into: follow `name =
    '${other}'` aliases to the field that holds a dict (or a non-reference value)."""
    seen = [name]
    while pure_name(cfg[name]) is not None:
        name = pure_name(cfg[name])
        if name in seen:
            raise ConfigReferenceError(f"{where}: references form a cycle: "
                                       + " -> ".join(seen + [name]))
        if name not in cfg:
            break
        seen.append(name)
    return name


def _take_redirects(child: dict, base: Any, where: str, redirects: list,
                    allow_list_keys: bool) -> None:
    """Pop from `child` (in place) every value written where `base` holds `'${name}'`.

    Appends (name, value, dotted path) to `redirects`; descends into dicts that merge.
    """
    for key in list(child):
        if key == DELETE_KEY:
            continue
        if isinstance(base, Mapping) and key in base:
            target = base[key]
        elif (allow_list_keys and isinstance(base, list) and isinstance(key, str)
              and key.isdigit() and int(key) < len(base)):
            target = base[int(key)]
        else:
            continue
        value = child[key]
        here = f"{where}.{key}" if where else str(key)
        # A top-level field is a knob itself: setting it replaces it (`val_data_root =
        # '/val'` over `val_data_root = '${data_root}'` does not move data_root).
        name = pure_name(target) if where else None
        replaces = isinstance(value, Mapping) and value.get(DELETE_KEY, False)
        if name is not None and not is_reference(value):
            redirects.append((name, child.pop(key), here))
        elif isinstance(value, Mapping) and not replaces:
            if not where and pure_name(target) is not None:
                child[key] = {**value, DELETE_KEY: True}   # a knob set to a dict
                continue
            if isinstance(target, str) and is_reference(target):
                raise ConfigReferenceError(
                    f"{here}: a dict cannot be merged into the computed value {target!r}; "
                    f"set the fields it is computed from, or replace it with "
                    f"{DELETE_KEY}=True")
            if isinstance(target, Mapping | list):
                _take_redirects(value, target, here, redirects, allow_list_keys)


def _apply_redirects(merged: dict, redirects: list, own: Mapping) -> dict:
    """Write each redirected value to the field it names: a dict merges into the dict that
    field stands for (following aliases), any other value replaces the field."""
    for name, value, where in redirects:
        if name not in merged:
            raise ConfigReferenceError(f"{where} holds '${{{name}}}', but the config has no "
                                       f"top-level {name!r} to set")
        if name in own and not isinstance(value, Mapping) and not _same(own[name], value):
            raise ConfigReferenceError(
                f"{where} = {value!r} and {name} = {own[name]!r} are both set, but "
                f"{where} is '${{{name}}}': set only {name}")
        merges = isinstance(value, Mapping) and not value.get(DELETE_KEY, False)
        source = _dict_source(merged, name, where) if merges else name
        if merges and isinstance(merged.get(source), Mapping):
            merged = Config._merge_a_into_b({source: value}, merged)
        else:
            if isinstance(value, Mapping):
                value = ConfigDict({k: v for k, v in value.items() if k != DELETE_KEY})
            merged[name] = value
    return merged


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001  (uncomparable values differ)
        return False


def _merge(child: dict, base: dict, allow_list_keys: bool = False) -> dict:
    """mmengine's merge of `child` over `base`, writes through references redirected."""
    child = copy.deepcopy(child)
    redirects: list = []
    _take_redirects(child, base, "", redirects, allow_list_keys)
    try:
        merged = Config._merge_a_into_b(child, base, allow_list_keys=allow_list_keys)
    except TypeError as err:   # mmengine: a dict over a non-dict value
        raise ConfigReferenceError(str(err)) from None
    return _apply_redirects(merged, redirects, child)


# ---------------------------------------------------------------------- files
def _base_files(tree: ast.Module, path: Path) -> list[Path]:
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == BASE_KEY):
            try:
                bases = ast.literal_eval(node.value)
            except ValueError:
                raise ConfigReferenceError(f"{path}: {BASE_KEY} must be a literal list of "
                                           "paths") from None
            bases = [bases] if isinstance(bases, str) else list(bases)
            return [(path.parent / b).resolve() for b in bases]
    return []


def _own_fields(tree: ast.Module, path: Path) -> dict:
    """Execute a config file's code without its bases; its public module names."""
    body = [n for n in tree.body if not (
        isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == BASE_KEY
                                          for t in n.targets))]
    namespace: dict = {}
    try:
        exec(compile(ast.Module(body=body, type_ignores=[]), str(path), "exec"), namespace)
    except NameError as err:
        raise ConfigReferenceError(
            f"{path}: {err}; a config sees no names of its bases: write '${{name}}' to use "
            "a top-level field (configs/README.md)") from None
    return {k: v for k, v in namespace.items()
            if not k.startswith("_") and not isinstance(v, types.ModuleType | types.FunctionType
                                                        | type)}


def _load_file(path: Path, chain: tuple[Path, ...] = ()) -> tuple[dict, list[str]]:
    """(merged unresolved fields of `path` and its bases, the texts of those files)."""
    if path in chain:
        raise ConfigReferenceError("config files include each other: "
                                   + " -> ".join(str(p) for p in chain + (path,)))
    if not path.is_file():
        where = f" (a base of {chain[-1]})" if chain else ""
        raise FileNotFoundError(f"config file not found: {path}{where}")
    text = path.read_text(encoding="utf-8")
    if re.search(r"\{\{\s*_base_", text):
        raise ConfigReferenceError(
            f"{path}: '{{{{_base_.x}}}}' copies a base value when the file is read, so later "
            "edits of x never reach it; write '${x}' instead (configs/README.md)")
    tree = ast.parse(text, filename=str(path))
    merged: dict = {}
    texts: list[str] = []
    for base in _base_files(tree, path):
        fields, base_texts = _load_file(base, chain + (path,))
        duplicate = merged.keys() & fields.keys()
        if duplicate:
            raise ConfigReferenceError(f"{path}: its bases both define {sorted(duplicate)}")
        merged.update(fields)
        texts += base_texts
    try:
        merged = _merge(_own_fields(tree, path), merged)
    except ConfigReferenceError as err:
        raise ConfigReferenceError(f"{path}: {err}") from None
    return merged, texts + [f"{path}\n{text}"]


# ---------------------------------------------------------------------- entry point
def parse_cfg_options(options: Mapping[str, Any] | Iterable[str] | None) -> dict:
    """`--cfg-options` as a nested dict: {"a.b": 1} or ["a.b=1"] -> {"a": {"b": 1}}."""
    if not options:
        return {}
    if not isinstance(options, Mapping):
        import argparse

        from mmengine.config import DictAction

        items = list(options)
        bad = [item for item in items if "=" not in item]
        if bad:
            raise ValueError(f"--cfg-options {bad[0]!r}: expected key=value")
        namespace = argparse.Namespace()
        DictAction(option_strings=[], dest="options")(None, namespace, items)
        options = namespace.options
    nested: dict = {}
    for full_key, value in options.items():
        node = nested
        *parents, last = full_key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--cfg-options {full_key}: {part} is set twice")
        node[last] = value
    return nested


def load_config(path: str | Path, cfg_options: Mapping[str, Any] | Iterable[str] | None = None,
                import_custom_modules: bool = True) -> Config:
    """Load, override, resolve: the effective config of `path`.

    Args:
        path: the config file (its `_base_` chain is followed).
        cfg_options: `--cfg-options` ({"dotted.key": value} from mmengine's DictAction, or
            "key=value" strings). A top-level key must be a field of the config (or a
            runner field): a misspelt knob is an error, not a silently added field.
        import_custom_modules: import the config's `custom_imports` (failures raise).

    Returns:
        a Config without references; `filename` is `path`.

    Raises:
        ConfigReferenceError: a reference that does not resolve, an override that would be
            lost, or an unknown `--cfg-options` key (the message names it).
        FileNotFoundError: the file or one of its bases does not exist.
    """
    path = Path(path).resolve()
    merged, texts = _load_file(path)
    options = parse_cfg_options(cfg_options)
    unknown = sorted(k for k in options if k not in merged and k not in RUNNER_FIELDS)
    if unknown:
        raise ConfigReferenceError(
            f"--cfg-options {', '.join(unknown)}: not a field of {path.name} (its top-level "
            f"fields: {', '.join(sorted(merged))})")
    if options:
        merged = _merge(options, merged, allow_list_keys=True)
    resolved, used, unread = resolve_references(merged)
    dead = sorted(k for k in options if k not in RUNNER_FIELDS and k not in used)
    if dead:
        raise ConfigReferenceError(
            f"--cfg-options {', '.join(dead)}: nothing in {path.name} reads this field, so "
            "setting it would change nothing")
    if unread:
        field = unread[0].split(".")[0]
        read = sorted(str(k) for k in merged[field] if f"{field}.{k}" not in unread)
        raise ConfigReferenceError(
            f"{path.name}: nothing reads {', '.join(unread)} (a misspelt key?), so setting it "
            f"would change nothing; the keys of {field} that are read: {', '.join(read)}")
    cfg = Config(resolved, cfg_text="\n".join(texts), filename=str(path))
    if import_custom_modules and cfg.get("custom_imports"):
        import_modules_from_strings(**cfg.custom_imports)
    return cfg


def unused_fields(path: str | Path) -> list[str]:
    """Dead knobs of a config: top-level fields that no reference reads and no runner uses,
    and ("field.key") keys of a dict field read key by key that nothing reads."""
    merged, _ = _load_file(Path(path).resolve())
    _, used, unread = resolve_references(merged)
    return sorted([k for k in merged if k not in used and k not in RUNNER_FIELDS] + unread)


def config_num_key_frames(cfg: Mapping[str, Any], source: str | Path = "config") -> int:
    """A loaded config's `num_key_frames` (the video frames prompted through the MLLM;
    configs/_base_/default_runtime.py), else Sa2VA's 5: the default of every tool that
    segments videos (tools/test.py, tools/predict.py, tools/app.py, mpr_cma.apis).

    Raises:
        ValueError: the field is not a positive integer (the message names `source`).
    """
    value = cfg.get("num_key_frames", SA2VA_NUM_KEY_FRAMES)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{source}: num_key_frames must be a positive integer, got {value!r}")
    return value
