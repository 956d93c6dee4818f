"""The tiny Sa2VA-MBA, random init, shared by the tests of mpr_cma.apis."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs/tiny/sa2va_mba_tiny.py"


@pytest.fixture(scope="session")
def tiny_model():
    from mpr_cma.apis import load_inference_model

    return load_inference_model(TINY, None, device="cpu")
