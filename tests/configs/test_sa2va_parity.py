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


ONE_B = ["mba_1b.py", "ablations/sa2va_1b_baseline.py", "ablations/mba_only_1b.py",
         "ablations/mba_tmc_1b.py", "ablations/mba_tmc_bound_1b.py", "ablations/mba_film_1b.py"]


def referring(cfg) -> list:
    parts = cfg.train_dataloader.dataset.datasets
    return [d for d in parts if d.type in ("RefCOCODataset", "RefVOSDataset")]


@pytest.mark.parametrize("name", ONE_B)
def test_1b_training_samples_and_loss_grid_are_sa2va_s(name):
    """Sa2VA01RefSeg / Sa2VA03RefVOS: 5 objects with replacement, 5 random key frames
    (also SAM-2's); models/sa2va.py: the loss's ground truth on the logits' grid."""
    cfg = load_config(CONFIGS / name, import_custom_modules=False)
    assert cfg.model.gt_mask_size == "pred"
    datasets = referring(cfg)
    assert len(datasets) == 6
    assert all((d.max_objects, d.replace) == (5, True) for d in datasets)
    videos = [d for d in datasets if d.type == "RefVOSDataset"]
    assert len(videos) == 3 and all(
        (d.num_frames, d.frame_mode, d.sam2_frames) == (5, "random", "same") for d in videos)


def test_tiny_demo_keeps_its_recorded_draw_and_grid():
    cfg = load_config(CONFIGS / "tiny" / "demo.py", import_custom_modules=False)
    assert cfg.model.gt_mask_size == "input"
    assert [d.replace for d in referring(cfg)] == [False, False]
