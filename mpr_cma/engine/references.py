"""`${...}` references of configs: parse, and resolve them over a merged config dict.

`'${name}'` (the whole string) is the value of the top-level field `name`, `'${expr}'` the
value of a Python expression over top-level fields (a few builtins, no others), a
reference inside a longer string is interpolated, and `'$${'` is a literal `'${'`. See
`mpr_cma.engine.config` for where they are resolved.
"""

import ast
import copy
import re
from collections.abc import Mapping
from typing import Any

from mmengine.config import ConfigDict

__all__ = ["ConfigReferenceError", "is_reference", "pure_name", "resolve_references"]

# Builtins available inside `${...}` expressions.
SAFE_BUILTINS = {f.__name__: f for f in (abs, bool, dict, float, int, len, list, max, min,
                                          round, str, sum, tuple)}
_PURE_NAME = re.compile(r"^\$\{\s*([A-Za-z_]\w*)\s*\}$")


class ConfigReferenceError(ValueError):
    """A reference that cannot be resolved, or an override that would be lost."""


def _segments(text: str, where: str) -> list[tuple[str, str]]:
    """Split a string into ("text", s) and ("ref", expr) pieces; `$${` is a literal `${`."""
    pieces, buf, i = [], [], 0
    while i < len(text):
        if text.startswith("$${", i):
            buf.append("${")
            i += 3
        elif text.startswith("${", i):
            depth, j = 1, i + 2
            while j < len(text) and depth:
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            if depth:
                raise ConfigReferenceError(f"{where}: unclosed '${{' in {text!r}")
            if buf:
                pieces.append(("text", "".join(buf)))
                buf = []
            pieces.append(("ref", text[i + 2:j - 1].strip()))
            i = j
        else:
            buf.append(text[i])
            i += 1
    if buf:
        pieces.append(("text", "".join(buf)))
    return pieces


def is_reference(value: Any) -> bool:
    """True for a string with a `${...}` reference in it."""
    return isinstance(value, str) and any(kind == "ref" for kind, _ in _segments(value, ""))


def pure_name(value: Any) -> str | None:
    """`name` for the string `'${name}'`, else None."""
    match = _PURE_NAME.match(value) if isinstance(value, str) else None
    return match.group(1) if match else None


class _Resolver:
    """Resolves the references of one config dict; remembers which names were read."""

    def __init__(self, cfg: Mapping):
        self.cfg = cfg
        self.done: dict[str, Any] = {}
        self.stack: list[str] = []
        self.used: set[str] = set()
        # Fields read as a whole (`${name}`, `${len(name)}`) and keys read one by one
        # (`${name["key"]}`): a dict field read only by key has a dead knob in every key
        # that nothing reads (e.g. a misspelt `dataset_repeats = dict(reovs=1)`).
        self.whole: set[str] = set()
        self.keys: dict[str, set] = {}

    def top(self, name: str, where: str, read: bool = True) -> Any:
        """The resolved top-level field `name`; `read`: a reference at `where` reads it."""
        if read:
            self.used.add(name)
        if name in self.done:
            return self.done[name]
        if name not in self.cfg:
            raise ConfigReferenceError(
                f"{where}: the reference names {name!r}, which is not a top-level field of "
                f"the config (top-level fields: {', '.join(sorted(self.cfg))})")
        if name in self.stack:
            cycle = " -> ".join(self.stack[self.stack.index(name):] + [name])
            raise ConfigReferenceError(f"{where}: references form a cycle: {cycle}")
        self.stack.append(name)
        try:
            self.done[name] = self.value(self.cfg[name], name)
        finally:
            self.stack.pop()
        return self.done[name]

    def value(self, node: Any, where: str) -> Any:
        if isinstance(node, Mapping):
            return ConfigDict({k: self.value(v, f"{where}.{k}") for k, v in node.items()})
        if isinstance(node, list | tuple):
            out = [self.value(v, f"{where}[{i}]") for i, v in enumerate(node)]
            return type(node)(out)
        if isinstance(node, str) and "${" in node:
            return self.string(node, where)
        return node

    def string(self, text: str, where: str) -> Any:
        pieces = _segments(text, where)
        if len(pieces) == 1 and pieces[0][0] == "ref":
            return copy.deepcopy(self.expression(pieces[0][1], where))
        return "".join(s if kind == "text" else str(self.expression(s, where))
                       for kind, s in pieces)

    def expression(self, expr: str, where: str) -> Any:
        try:
            code = compile(expr, f"<reference at {where}>", "eval")
        except SyntaxError as err:
            raise ConfigReferenceError(f"{where}: '${{{expr}}}' is not a Python expression: "
                                       f"{err.msg}") from None
        names = _Names(self, where)
        # Every field the expression names is read, whichever branch runs now.
        self.used.update(n for n in code.co_names if n in self.cfg)
        self._note_key_reads(expr)
        try:
            return eval(code, {"__builtins__": SAFE_BUILTINS}, names)  # noqa: S307
        except ConfigReferenceError:
            raise
        except Exception as err:  # noqa: BLE001  (any evaluation error names the key)
            raise ConfigReferenceError(f"{where}: '${{{expr}}}' failed: "
                                       f"{type(err).__name__}: {err}") from None

    def _note_key_reads(self, expr: str) -> None:
        """Record which fields `expr` reads whole and which it reads by a literal key."""
        tree = ast.parse(expr, mode="eval")
        keyed = set()
        for node in ast.walk(tree):
            if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
                    and isinstance(node.slice, ast.Constant) and node.value.id in self.cfg):
                self.keys.setdefault(node.value.id, set()).add(node.slice.value)
                keyed.add(id(node.value))
        self.whole.update(node.id for node in ast.walk(tree)
                          if isinstance(node, ast.Name) and node.id in self.cfg
                          and id(node) not in keyed)

    def unread_keys(self) -> list[str]:
        """The "field.key" of each key of a dict field that references read only key by
        key, and never this key."""
        return sorted(f"{name}.{key}" for name, read in self.keys.items()
                      if name not in self.whole and isinstance(self.cfg[name], Mapping)
                      for key in self.cfg[name] if key not in read)


class _Names(Mapping):
    """The top-level fields as the local names of a `${...}` expression (resolved lazily)."""

    def __init__(self, resolver: _Resolver, where: str):
        self.resolver, self.where = resolver, where

    def __getitem__(self, name: str) -> Any:
        if name in SAFE_BUILTINS:
            raise KeyError(name)
        return self.resolver.top(name, self.where)

    def __iter__(self):
        return iter(self.resolver.cfg)

    def __len__(self) -> int:
        return len(self.resolver.cfg)


def resolve_references(cfg: Mapping) -> tuple[dict, set[str], list[str]]:
    """Resolve every `${...}` of a merged config dict.

    Returns:
        (resolved dict of ConfigDicts, names of the top-level fields that references read,
        the unread keys ("field.key") of dict fields that references read only by key).

    Raises:
        ConfigReferenceError: a missing name, a cycle or a failing expression; the message
            names the key that holds the reference.
    """
    resolver = _Resolver(cfg)
    resolved = {name: resolver.top(name, name, read=False) for name in cfg}
    return resolved, resolver.used, resolver.unread_keys()
