"""BCE + Dice with point sampling (Sa2VA's segmentation loss)."""

import math

import pytest
import torch

from mpr_cma.losses import (
    dice_loss,
    point_sample,
    sample_uncertain_points,
    segmentation_losses,
    sigmoid_bce_loss,
)


def test_bce_hand_computed():
    logits = torch.tensor([[0.0, 2.0]])
    targets = torch.tensor([[1.0, 0.0]])
    # BCE(0, 1) = log(1 + e^0) = log 2; BCE(2, 0) = log(1 + e^2).
    expected = (math.log(2) + math.log(1 + math.exp(2))) / 2
    assert sigmoid_bce_loss(logits, targets).item() == pytest.approx(expected, rel=1e-6)


def test_dice_hand_computed():
    logits = torch.tensor([[0.0, 0.0, 100.0]])  # p = 0.5, 0.5, 1
    targets = torch.tensor([[1.0, 0.0, 1.0]])
    # 1 - (2 * (0.5 + 1) + 1) / ((0.5 + 0.5 + 1) + 2 + 1) = 1 - 4 / 5
    assert dice_loss(logits, targets, eps=1.0).item() == pytest.approx(0.2, rel=1e-6)
    # empty prediction and empty target cost nothing thanks to eps
    assert dice_loss(torch.full((1, 4), -100.0), torch.zeros(1, 4)).item() == pytest.approx(0)


def test_point_sample_reads_pixel_centres():
    values = torch.arange(12.0).view(1, 1, 3, 4)
    # centre of pixel (row 1, col 2) is at x = 2.5 / 4, y = 1.5 / 3
    coords = torch.tensor([[[2.5 / 4, 1.5 / 3], [0.5 / 4, 0.5 / 3]]])
    assert point_sample(values, coords).flatten().tolist() == pytest.approx([6.0, 0.0], abs=1e-5)


def test_uncertain_points_concentrate_on_uncertain_band():
    logits = torch.full((2, 1, 64, 64), 10.0)
    logits[:, :, :, 30:34] = 0.0  # an uncertain vertical band, 1/16 of the area
    g = torch.Generator().manual_seed(0)
    coords = sample_uncertain_points(logits, 1000, 3.0, 0.75, generator=g)
    assert coords.shape == (2, 1000, 2)
    assert coords.min() >= 0 and coords.max() <= 1
    near_band = ((coords[..., 0] * 64 > 29) & (coords[..., 0] * 64 < 35)).float().mean()
    # 75% chosen among the most uncertain candidates, ~3/16 of which lie in the band
    # (plus the uniform 25%): far above the 1/16 of uniform sampling.
    assert near_band > 0.15
    with pytest.raises(ValueError, match="oversample_ratio"):
        sample_uncertain_points(logits, 10, oversample_ratio=0.5)


def test_full_map_losses_equal_the_plain_functions():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 16, 16, generator=g)
    gt = torch.rand(3, 16, 16, generator=g) > 0.5
    losses = segmentation_losses(logits, gt, num_points=None)
    torch.testing.assert_close(losses["loss_mask"], sigmoid_bce_loss(logits, gt.float()))
    torch.testing.assert_close(losses["loss_dice"], dice_loss(logits, gt.float()))


def test_prediction_resized_to_ground_truth_and_good_masks_score_low():
    gt = torch.zeros(2, 32, 32, dtype=torch.bool)
    gt[:, 8:24, 8:24] = True
    good = torch.where(gt[:, ::2, ::2], 8.0, -8.0)  # right mask at half resolution
    bad = -good
    for num_points in (None, 500):
        g = torch.Generator().manual_seed(0)
        low = segmentation_losses(good, gt, num_points=num_points, generator=g)
        high = segmentation_losses(bad, gt, num_points=num_points, generator=g)
        assert low["loss_mask"] < high["loss_mask"] and low["loss_dice"] < high["loss_dice"]


@pytest.mark.parametrize("fill", [False, True])
def test_empty_and_full_masks_give_finite_losses(fill):
    gt = torch.full((2, 16, 16), fill)
    logits = torch.randn(2, 16, 16, requires_grad=True)
    losses = segmentation_losses(logits, gt, num_points=100)
    total = sum(losses.values())
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(logits.grad).all()


def test_bfloat16_logits_and_bad_shapes():
    logits = torch.randn(2, 16, 16).bfloat16()
    gt = torch.rand(2, 16, 16) > 0.5
    losses = segmentation_losses(logits, gt, num_points=64)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    with pytest.raises(ValueError, match=r"\(2, 16, 16\) and \(3, 16, 16\)"):
        segmentation_losses(logits, torch.zeros(3, 16, 16), num_points=None)
