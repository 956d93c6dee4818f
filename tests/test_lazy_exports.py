"""`mpr_cma.lazy_exports`: names resolve from their submodule on first use, only then."""

import subprocess
import sys
import types

import pytest

from mpr_cma.lazy_exports import lazy_exports


def test_lazy_exports_resolves_caches_and_refuses_unknown_names(monkeypatch):
    pkg = types.ModuleType("fake_pkg")
    sub = types.ModuleType("fake_pkg.sub")
    sub.thing = object()
    monkeypatch.setitem(sys.modules, "fake_pkg", pkg)
    monkeypatch.setitem(sys.modules, "fake_pkg.sub", sub)
    pkg.__all__, pkg.__getattr__, pkg.__dir__ = lazy_exports(
        "fake_pkg", {"thing": "sub", "alias": ("sub", "thing")})

    assert pkg.__all__ == ["alias", "thing"]
    assert pkg.alias is sub.thing
    assert "thing" in pkg.__dir__()
    assert "thing" not in vars(pkg)
    assert pkg.thing is sub.thing
    assert vars(pkg)["thing"] is sub.thing  # cached: no second look-up
    with pytest.raises(AttributeError, match="fake_pkg.*nope"):
        pkg.nope  # noqa: B018


@pytest.mark.parametrize("package", ["mpr_cma.evaluation", "mpr_cma.apis", "mpr_cma.datasets"])
def test_importing_the_package_imports_no_torch(package):
    code = f"import sys, {package} as p; p.__all__; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"
