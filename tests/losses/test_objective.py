"""MPRCMALoss: named, weighted terms of eq. (6)."""

import pytest
import torch

from mpr_cma.losses import MPRCMALoss, boundary_loss, dice_loss, sigmoid_bce_loss
from mpr_cma.registry import MODELS


def batch(n=3, size=32, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, size, size, generator=g)
    gt = torch.zeros(n, size, size, dtype=torch.bool)
    gt[0, 4:20, 6:18] = True
    gt[2] = True  # object 1 empty, object 2 full
    features = torch.randn(n, dim, 8, 8, generator=g)
    text = torch.randn(n, dim, generator=g)
    return logits, gt, features, text


def make_loss(**kwargs):
    torch.manual_seed(0)
    kwargs = {"tmc_visual_dim": 16, "tmc_text_dim": 16, "tmc_embed_dim": 8,
              "num_points": None, **kwargs}
    return MPRCMALoss(**kwargs)


def test_defaults_are_the_paper_values():
    loss = MPRCMALoss()
    assert (loss.bce_weight, loss.dice_weight) == (2.0, 0.5)
    assert (loss.tmc_weight, loss.bound_weight) == (0.1, 0.05)
    assert loss.tmc.tau == 0.15 and loss.seg_kwargs["num_points"] == 12544


def test_terms_are_named_and_weighted():
    logits, gt, features, text = batch()
    terms = make_loss()(logits, gt, features, text)
    assert set(terms) == {"loss_mask", "loss_dice", "loss_tmc", "loss_bound"}
    assert terms["loss_mask"].item() == pytest.approx(
        2.0 * sigmoid_bce_loss(logits, gt.float()).item(), rel=1e-6)
    assert terms["loss_dice"].item() == pytest.approx(
        0.5 * dice_loss(logits, gt.float()).item(), rel=1e-6)
    assert terms["loss_bound"].item() == pytest.approx(
        0.05 * boundary_loss(logits, gt).item(), rel=1e-6)
    assert all(torch.isfinite(v) for v in terms.values())


def test_aux_warmup_scales_only_the_auxiliary_terms():
    logits, gt, features, text = batch()
    module = make_loss()
    full = module(logits, gt, features, text)
    module.set_aux_warmup_scale(0.5)
    half = module(logits, gt, features, text)
    assert half["loss_mask"] == full["loss_mask"]
    for key in ("loss_tmc", "loss_bound"):
        assert half[key].item() == pytest.approx(0.5 * full[key].item(), rel=1e-6)
    with pytest.raises(ValueError, match="warm-up"):
        module.set_aux_warmup_scale(-0.1)


def test_disabled_terms_are_absent_and_build_no_parameters():
    logits, gt, _, _ = batch()
    module = make_loss(tmc_weight=0.0, bound_weight=0.0)
    assert module.tmc is None and not list(module.parameters())
    assert set(module(logits, gt)) == {"loss_mask", "loss_dice"}


def test_gradients_reach_predictions_and_tmc_heads():
    logits, gt, features, text = batch()
    logits.requires_grad_(True)
    features.requires_grad_(True)
    module = make_loss(tmc_pool_mask="pred")
    sum(module(logits, gt, features, text).values()).backward()
    assert logits.grad.abs().sum() > 0 and features.grad.abs().sum() > 0
    assert module.tmc.text_proj[0].weight.grad.abs().sum() > 0


def test_gt_pooling_and_bfloat16_inputs():
    logits, gt, features, text = batch()
    module = make_loss(tmc_pool_mask="gt", num_points=200)
    terms = module(logits.bfloat16(), gt, features.bfloat16(), text.bfloat16())
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in terms.values())


def test_bad_configuration_and_missing_inputs():
    with pytest.raises(ValueError, match="tmc_pool_mask"):
        MPRCMALoss(tmc_pool_mask="box")
    with pytest.raises(ValueError, match="bound_weight"):
        MPRCMALoss(bound_weight=-1)
    logits, gt, _, _ = batch()
    with pytest.raises(ValueError, match="features"):
        make_loss()(logits, gt)
    assert isinstance(MODELS.build(dict(type="MPRCMALoss", tmc_weight=0)), MPRCMALoss)
