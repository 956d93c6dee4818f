"""Warm-up hooks, crash-safe checkpoint helpers and the runner glue (no training)."""

import os
from types import SimpleNamespace

import pytest
import torch

from mpr_cma.engine import WarmupHook, find_latest_checkpoint, linear_warmup_scale
from mpr_cma.engine.checkpoint import (
    PARTIAL_SUFFIX,
    capture_rng_state,
    publish,
    restore_rng_state,
    write_text_atomic,
)
from mpr_cma.engine.config import load_config
from mpr_cma.engine.hooks import unwrap_model
from mpr_cma.engine.runner import resolve_resume, setup_config
from mpr_cma.losses import MPRCMALoss
from mpr_cma.models import MaskBiasedAttention


@pytest.mark.parametrize("iteration, max_iters, ratio, expected", [
    (0, 100, 0.05, 0.2), (4, 100, 0.05, 1.0), (50, 100, 0.05, 1.0), (1, 100, 0.05, 0.4),
    (0, 100, 0.0, 1.0), (0, 10, 1.0, 0.1), (9, 10, 1.0, 1.0),
    # whole iterations, as mmengine's LR warm-up: int(0.34 * 6) = 2
    (0, 6, 0.34, 0.5), (1, 6, 0.34, 1.0),
])
def test_linear_warmup_scale(iteration, max_iters, ratio, expected):
    assert linear_warmup_scale(iteration, max_iters, ratio) == pytest.approx(expected)


def test_warmup_ratio_out_of_range_is_an_error():
    with pytest.raises(ValueError):
        WarmupHook(mba_warmup_ratio=1.5)


class _Wrapper:  # like mmengine's MMDeepSpeedEngineWrapper around a DeepSpeedEngine
    def __init__(self, module):
        self.model = SimpleNamespace(module=module)


def test_warmup_hook_sets_mba_and_aux_scales_through_wrappers():
    model = torch.nn.ModuleDict({"mba": MaskBiasedAttention(dim=32, num_heads=2),
                                 "criterion": MPRCMALoss(tmc_visual_dim=32, tmc_text_dim=32)})
    hook = WarmupHook(mba_warmup_ratio=0.1, aux_warmup_ratio=0.5)
    runner = SimpleNamespace(model=_Wrapper(model), iter=4, max_iters=100,
                             message_hub=SimpleNamespace(update_scalar=lambda *a: None))
    assert unwrap_model(runner.model) is model
    hook.before_train_iter(runner, 0)
    assert model["mba"].warmup_scale == pytest.approx(0.5)
    assert model["criterion"].aux_warmup_scale == pytest.approx(0.1)
    # resume-safe: depends only on runner.iter
    runner.iter = 60
    hook.before_train_iter(runner, 0)
    assert model["mba"].warmup_scale == 1.0 and model["criterion"].aux_warmup_scale == 1.0


def _fake_ds_checkpoint(path):
    os.makedirs(path)
    (open(os.path.join(path, "mp_rank_00_model_states.pt"), "wb")).close()


def test_latest_checkpoint_ignores_partial_and_incomplete(tmp_path):
    assert find_latest_checkpoint(str(tmp_path)) is None
    _fake_ds_checkpoint(tmp_path / "iter_2.pth")
    _fake_ds_checkpoint(tmp_path / f"iter_6.pth{PARTIAL_SUFFIX}")   # killed while saving
    os.makedirs(tmp_path / "iter_8.pth")                              # no model states
    write_text_atomic(str(tmp_path / "last_checkpoint"), str(tmp_path / "iter_8.pth"))
    assert find_latest_checkpoint(str(tmp_path)) == str(tmp_path / "iter_2.pth")
    publish(str(tmp_path / f"iter_6.pth{PARTIAL_SUFFIX}"), str(tmp_path / "iter_6.pth"))
    assert find_latest_checkpoint(str(tmp_path)) == str(tmp_path / "iter_6.pth")
    assert not (tmp_path / f"iter_6.pth{PARTIAL_SUFFIX}").exists()
    assert resolve_resume("auto", str(tmp_path)) == str(tmp_path / "iter_6.pth")
    assert resolve_resume(None, str(tmp_path)) is False


def test_publish_replaces_an_existing_checkpoint_dir(tmp_path):
    _fake_ds_checkpoint(tmp_path / "iter_2.pth")
    _fake_ds_checkpoint(tmp_path / "iter_2.pth.partial")
    (tmp_path / "iter_2.pth.partial" / "new").write_text("x")
    publish(str(tmp_path / "iter_2.pth.partial"), str(tmp_path / "iter_2.pth"))
    assert (tmp_path / "iter_2.pth" / "new").exists()
    assert sorted(os.listdir(tmp_path)) == ["iter_2.pth"]


def test_rng_state_round_trip():
    state = capture_rng_state()
    first = torch.rand(3)
    restore_rng_state(state)
    assert torch.equal(torch.rand(3), first)


def test_setup_config_backend_and_interval_check(tmp_path):
    cfg = load_config("configs/tiny/train_tiny.py")
    setup_config(cfg, work_dir=str(tmp_path), launcher="pytorch")
    assert cfg.env_cfg.dist_cfg.backend == ("nccl" if torch.cuda.is_available() else "gloo")
    assert cfg.resume is False
    bad = load_config("configs/tiny/train_tiny.py")
    bad.default_hooks.checkpoint.interval = 3   # not a multiple of the 2 accumulation steps
    with pytest.raises(ValueError, match="accumulation"):
        setup_config(bad, work_dir=str(tmp_path), launcher="pytorch")
