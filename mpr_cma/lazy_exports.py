"""PEP 562 lazy exports for a package's `__init__`: names are imported from their submodule on
first use, so importing the package costs nothing heavy (no torch for `tools/test.py --help`,
no transformers for `tools/app.py --help`)."""

import importlib
import sys
from collections.abc import Callable, Mapping


def lazy_exports(
    package: str, exports: Mapping[str, str | tuple[str, str]]
) -> tuple[list[str], Callable[[str], object], Callable[[], list[str]]]:
    """Build `__all__`, `__getattr__` and `__dir__` for `package`.

    Args:
        package: the package's `__name__`.
        exports: public name -> submodule (relative to `package`) that defines it under
            that name, or -> (submodule, attribute) to export it under another name.

    Returns:
        `(__all__, __getattr__, __dir__)` to assign at the package's top level.
    """
    names = sorted(exports)

    def getattr_(name: str) -> object:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        target = exports[name]
        module, attr = (target, name) if isinstance(target, str) else target
        value = getattr(importlib.import_module(f"{package}.{module}"), attr)
        # cached in the package's namespace: later look-ups skip this function
        setattr(sys.modules[package], name, value)
        return value

    def dir_() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return names, getattr_, dir_
