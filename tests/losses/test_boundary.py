"""Distance-weighted boundary loss: zero when perfect, grows with displacement."""

import pytest
import torch

from mpr_cma.losses import boundary_loss, signed_distance_map


def square(size=64, top=20, left=20, side=20):
    mask = torch.zeros(1, size, size)
    mask[:, top:top + side, left:left + side] = 1
    return mask


def hard_logits(mask):
    return (2 * mask - 1) * 1e4  # sigmoid gives exactly 0 or 1 in fp32


def test_signed_distance_hand_computed_row():
    mask = torch.tensor([[[0, 0, 1, 1, 1, 0, 0, 0]]], dtype=torch.bool)
    # outside: distance to nearest object pixel minus 0.5; inside: minus (distance to
    # nearest background pixel minus 0.5); then clipped at D = 2 and divided by D.
    expected = [1.5, 0.5, -0.5, -1.5, -0.5, 0.5, 1.5, 2.0]
    got = signed_distance_map(mask, max_dist=2.0)
    assert got.flatten().tolist() == pytest.approx([v / 2.0 for v in expected])


def test_zero_for_a_perfect_mask():
    gt = square()
    assert boundary_loss(hard_logits(gt), gt).item() == 0.0


def test_monotone_in_a_shifted_square():
    gt = square()
    values = [boundary_loss(hard_logits(square(top=20 + s)), gt).item() for s in range(0, 13)]
    assert values[0] == 0.0
    assert all(b > a for a, b in zip(values, values[1:], strict=False)), values
    # also beyond the clip distance D the loss keeps growing
    far = [boundary_loss(hard_logits(square(top=20 + s)), gt, max_dist=4.0).item()
           for s in (2, 4, 8, 16)]
    assert all(b > a for a, b in zip(far, far[1:], strict=False)), far


def test_soft_predictions_are_differentiable():
    gt = square()
    logits = torch.zeros(1, 64, 64, requires_grad=True)
    loss = boundary_loss(logits, gt)
    loss.backward()
    assert loss > 0 and torch.isfinite(logits.grad).all()
    # the gradient pushes probability down outside and up inside the object
    assert logits.grad[0, 0, 0] > 0 and logits.grad[0, 30, 30] < 0


def test_degenerate_ground_truth_is_finite_with_known_values():
    logits = torch.randn(2, 16, 16)
    probs = logits.sigmoid()
    empty = boundary_loss(logits[:1], torch.zeros(1, 16, 16))
    full = boundary_loss(logits[1:], torch.ones(1, 16, 16))
    assert empty.item() == pytest.approx(probs[0].mean().item(), rel=1e-5)
    assert full.item() == pytest.approx((1 - probs[1]).mean().item(), rel=1e-5)


def test_working_size_precomputed_sdf_and_bfloat16():
    gt = square(size=128, top=40, left=40, side=40)
    logits = hard_logits(square(size=64, top=22, left=20, side=20))
    at_64 = boundary_loss(logits, gt, size=(64, 64))
    sdf = signed_distance_map(torch.nn.functional.interpolate(gt[None], size=(64, 64))[0] > 0.5)
    assert boundary_loss(logits, gt, sdf=sdf).item() == pytest.approx(at_64.item())
    bf16 = boundary_loss(logits.bfloat16(), gt, size=(64, 64))
    assert bf16.dtype == torch.float32 and torch.isfinite(bf16)
    with pytest.raises(ValueError, match="sdf must be"):
        boundary_loss(logits, gt, sdf=sdf[:, :32])
    with pytest.raises(ValueError, match="same B"):
        boundary_loss(logits, torch.zeros(2, 64, 64))
