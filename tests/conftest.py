"""Test isolation shared by every test module."""

import pytest


@pytest.fixture(autouse=True)
def _no_leaked_default_scope():
    """A Runner built in one test leaves mmengine's global DefaultScope behind (e.g. a plain
    mmengine Runner sets 'mmengine'); a later `MODELS.build` would then look its types up
    in that scope's registry instead of ours. Each test starts and ends without one."""
    yield
    import sys

    if "mmengine.registry" in sys.modules:   # never import mmengine for tests that do not
        from mmengine.registry import DefaultScope

        DefaultScope._instance_dict.clear()
