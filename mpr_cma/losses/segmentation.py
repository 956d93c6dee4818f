"""Segmentation losses kept from Sa2VA: sigmoid BCE + Dice on importance-sampled points.

Sa2VA (and Mask2Former before it) does not compare full-resolution masks: it samples
`num_points` (12,544 = 112^2) locations per mask, 75% of them where the prediction is most
uncertain (|logit| smallest among 3x as many random candidates) and 25% uniformly, and
evaluates both losses on the prediction and the ground truth bilinearly sampled there.
Sa2VA weights: BCE 2.0, Dice 0.5 (naive Dice with eps = 1). All maths is fp32.
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def point_sample(values: Tensor, coords: Tensor) -> Tensor:
    """Bilinearly sample maps at normalised point coordinates.

    Args:
        values: (N, C, H, W) maps, any float dtype.
        coords: (N, P, 2) (x, y) coordinates in [0, 1], (0, 0) = top-left corner of the
            top-left pixel (align_corners=False convention).

    Returns:
        (N, C, P) sampled values, dtype of `values`.
    """
    grid = (2.0 * coords - 1.0).unsqueeze(2).to(values.dtype)  # (N, P, 1, 2) in [-1, 1]
    return F.grid_sample(values, grid, mode="bilinear", align_corners=False).squeeze(3)


@torch.no_grad()
def sample_uncertain_points(
    logits: Tensor,
    num_points: int,
    oversample_ratio: float = 3.0,
    importance_sample_ratio: float = 0.75,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Pick point coordinates biased towards uncertain predictions (PointRend sampling).

    Args:
        logits: (N, 1, H, W) mask logits.
        num_points: points per mask.
        oversample_ratio: random candidates drawn per kept point (>= 1).
        importance_sample_ratio: fraction of points taken from the most uncertain
            candidates; the rest are uniform random.
        generator: optional RNG for reproducible sampling.

    Returns:
        (N, num_points, 2) fp32 (x, y) coordinates in [0, 1].
    """
    if oversample_ratio < 1 or not 0 <= importance_sample_ratio <= 1:
        raise ValueError(
            f"need oversample_ratio >= 1 and importance_sample_ratio in [0, 1], got "
            f"{oversample_ratio} and {importance_sample_ratio}"
        )
    n = logits.shape[0]
    device = logits.device
    num_candidates = int(num_points * oversample_ratio)
    candidates = torch.rand(n, num_candidates, 2, device=device, generator=generator)
    uncertainty = -point_sample(logits.float(), candidates).abs().squeeze(1)  # (N, M)
    num_uncertain = int(importance_sample_ratio * num_points)
    top = uncertainty.topk(num_uncertain, dim=1).indices
    picked = candidates.gather(1, top.unsqueeze(-1).expand(-1, -1, 2))
    num_random = num_points - num_uncertain
    if num_random > 0:
        extra = torch.rand(n, num_random, 2, device=device, generator=generator)
        picked = torch.cat([picked, extra], dim=1)
    return picked


def sigmoid_bce_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean binary cross-entropy with logits over all elements, fp32 scalar.

    Args:
        logits: (N, ...) predictions.
        targets: (N, ...) in [0, 1], same shape.
    """
    return F.binary_cross_entropy_with_logits(logits.float(), targets.float())


def dice_loss(logits: Tensor, targets: Tensor, eps: float = 1.0) -> Tensor:
    """Naive Dice loss, 1 - (2 sum(p t) + eps) / (sum(p) + sum(t) + eps), mean over masks.

    Args:
        logits: (N, ...) predictions; p = sigmoid(logits).
        targets: (N, ...) in [0, 1], same shape.
        eps: smoothing (Sa2VA: 1.0), also makes an empty-vs-empty mask cost 0.

    Returns:
        fp32 scalar.
    """
    probs = logits.float().sigmoid().flatten(1)
    targets = targets.float().flatten(1)
    numerator = 2 * (probs * targets).sum(1) + eps
    denominator = probs.sum(1) + targets.sum(1) + eps
    return (1 - numerator / denominator).mean()


def segmentation_losses(
    pred_logits: Tensor,
    gt_masks: Tensor,
    num_points: int | None = 12544,
    oversample_ratio: float = 3.0,
    importance_sample_ratio: float = 0.75,
    dice_eps: float = 1.0,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Unweighted BCE and Dice of predicted masks against ground truth.

    Args:
        pred_logits: (N, H, W) mask logits, one per object.
        gt_masks: (N, H', W') ground-truth masks (bool or {0, 1}); any resolution.
        num_points: points sampled per mask (Sa2VA: 12,544); None compares full maps
            (the prediction is bilinearly resized to the ground-truth size).
        oversample_ratio, importance_sample_ratio: see `sample_uncertain_points`.
        dice_eps: Dice smoothing.
        generator: optional RNG for the point sampling.

    Returns:
        {"loss_mask": BCE, "loss_dice": Dice}, fp32 scalars.
    """
    if pred_logits.dim() != 3 or gt_masks.dim() != 3 or len(pred_logits) != len(gt_masks):
        raise ValueError(
            f"pred_logits and gt_masks must be (N, H, W) with the same N, got "
            f"{tuple(pred_logits.shape)} and {tuple(gt_masks.shape)}"
        )
    logits = pred_logits.float().unsqueeze(1)
    targets = gt_masks.float().unsqueeze(1)
    if num_points is None:
        if logits.shape[-2:] != targets.shape[-2:]:
            logits = F.interpolate(
                logits, size=targets.shape[-2:], mode="bilinear", align_corners=False
            )
    else:
        coords = sample_uncertain_points(
            logits, num_points, oversample_ratio, importance_sample_ratio, generator
        )
        logits = point_sample(logits, coords)
        targets = point_sample(targets, coords)
    return {
        "loss_mask": sigmoid_bce_loss(logits, targets),
        "loss_dice": dice_loss(logits, targets, dice_eps),
    }
