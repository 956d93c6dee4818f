"""The 1B configs run SAM-2 as Sa2VA does; the tiny ones keep their measured gating."""

from pathlib import Path

import pytest

from mpr_cma.engine.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SA2VA_GROUNDING = dict(object_gating="pointer", video_prompt="key_frames",
                       mba_on_tracked_frames=False, memory_dtype="bfloat16")


@pytest.mark.parametrize("name", ["mba_1b.py", "ablations/sa2va_1b_baseline.py",
                                  "ablations/mba_only_1b.py", "ablations/mba_film_1b.py"])
def test_1b_grounding_is_sa2va_s(name):
    grounding = load_config(CONFIGS / name).model.grounding
    assert {k: grounding[k] for k in SA2VA_GROUNDING} == SA2VA_GROUNDING


@pytest.mark.parametrize("name", ["tiny/sa2va_mba_tiny.py", "tiny/demo.py",
                                  "tiny/sa2va_baseline_tiny.py"])
def test_tiny_configs_keep_their_gating(name):
    assert load_config(CONFIGS / name).model.grounding.object_gating == "never"
