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


def unwrapped(cfg) -> list:
    """The training datasets' configs, without their RepeatedDataset wrappers."""
    return [d.dataset if d.type == "RepeatedDataset" else d
            for d in cfg.train_dataloader.dataset.datasets]


def referring(cfg) -> list:
    return [d for d in unwrapped(cfg) if d.type in ("RefCOCODataset", "RefVOSDataset")]


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
    # the benchmark's RefCOCO split, the attribute root, the MeViS videos
    assert [d.replace for d in referring(cfg)] == [False, False, False]


# Sa2VA's `repeats=` of the datasets the 1B recipe shares with it
# (projects/sa2va/configs/sa2va_in30_2b.py, the same in the 8b / 14b configs), keyed by the
# dataset's identity in our configs: RefCOCO 5, RefCOCO+ 5, RefCOCOg 4 (Sa2VA01RefSeg),
# ReVOS 10, MeVIS 4, RefYTVOS 4 (Sa2VA03RefVOS), llava_665k 1 (LLaVADataset).
SA2VA_REPEATS = {"refcoco": 5, "refcoco+": 5, "refcocog": 4, "revos": 10, "mevis": 4,
                 "ref_ytvos": 4, "llava": 1}


def _identity(d) -> str:
    return d.get("dataset") or d.get("name") or ("llava" if d.type == "LLaVADataset" else "?")


@pytest.mark.parametrize("name", ONE_B)
def test_1b_training_mix_repeats_datasets_as_sa2va(name):
    cfg = load_config(CONFIGS / name, import_custom_modules=False)
    parts = cfg.train_dataloader.dataset.datasets
    assert all(d.type == "RepeatedDataset" for d in parts)
    assert {_identity(d.dataset): d.repeats for d in parts} == SA2VA_REPEATS
