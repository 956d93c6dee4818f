"""How much the loss's ground-truth grid matters: Sa2VA's 'pred' vs 'input' (docs/sa2va_parity.md).

Usage:
    python scripts/gt_mask_size_gap.py [--scenes 50] [--seed 0]

`Sa2VAMBA(gt_mask_size=...)` decides on which grid the mask losses read the ground truth:
"pred" (Sa2VA, `models/sa2va.py` forward) resizes each mask (nearest) to the decoder's
low-res logits (S / 4), "input" to SAM-2's input S x S. Both sample the same points of the
logits (PointRend sampling, `mpr_cma.losses.segmentation`), so only the targets differ.
Two geometries, each mask resized by the model's own `_ground_truth_rows`:

- 1B: scikit-image's `horse` silhouette (328 x 400) at S = 1024 -> 256 vs 1024,
  12,544 points per mask (Sa2VA's);
- tiny: the object masks of `--scenes` seeded synthetic 64 px scenes (the demo's data,
  `mpr_cma.datasets.synthetic_scene`) at S = 64 -> 16 vs 64, 256 points (the tiny configs').

Printed per geometry: the mean |target difference| and the share of points where the
targets differ, over uniform random points and over the points the loss samples for one
fixed prediction (logits +-6 from each low-res pixel's area fraction of the mask: a good,
slightly blurred prediction; 75% of the points at its most uncertain places, i.e. on the
boundary); the objects whose mask loses half its area or more, or vanishes, on the low-res
grid; and BCE / Dice (unweighted) of that prediction under both rules, on the same points.
"""

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from skimage import data

from mpr_cma.datasets.synthetic_scene import render, sample_image_scene
from mpr_cma.losses.segmentation import (
    point_sample,
    sample_uncertain_points,
    segmentation_losses,
)
from mpr_cma.models.sa2va import Sa2VAMBA


def grids(masks: torch.Tensor, low: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, low, low) and (N, size, size) float ground truth of (N, H, W) bool masks."""
    pred, = Sa2VAMBA._ground_truth_rows([masks], (low, low))
    full, = Sa2VAMBA._ground_truth_rows([masks], (size, size))
    return pred, full


def blurred_logits(masks: torch.Tensor, low: int) -> torch.Tensor:
    """(N, low, low) logits: +-6 around the area fraction of each low-res pixel."""
    fraction = F.adaptive_avg_pool2d(masks.float()[:, None], (low, low))[:, 0]
    return 6.0 * (2.0 * fraction - 1.0)


def compare(masks: torch.Tensor, low: int, size: int, num_points: int,
            seed: int) -> dict[str, float]:
    """The gap between the two rules on (N, H, W) bool masks (see the module doc)."""
    pred, full = grids(masks, low, size)
    gen = torch.Generator().manual_seed(seed)
    points = torch.rand(len(masks), num_points, 2, generator=gen)
    a = point_sample(pred[:, None], points)
    b = point_sample(full[:, None], points)
    diff = (a - b).abs()
    area_low = pred.flatten(1).mean(1)
    area_full = full.flatten(1).mean(1)
    logits = blurred_logits(masks, low)
    # the loss's own points for that prediction (75% at its most uncertain places)
    gen = torch.Generator().manual_seed(seed)
    loss_points = sample_uncertain_points(logits[:, None], num_points, generator=gen)
    at_loss = (point_sample(pred[:, None], loss_points)
               - point_sample(full[:, None], loss_points)).abs()
    losses = {}
    for name, gt in (("pred", pred), ("input", full)):
        gen = torch.Generator().manual_seed(seed)
        losses[name] = segmentation_losses(logits, gt, num_points=num_points, generator=gen)
    return {
        "objects": len(masks),
        "mean_abs_diff": float(diff.mean()),
        "points_differ": float((diff > 1e-6).float().mean()),
        "loss_mean_abs_diff": float(at_loss.mean()),
        "loss_points_differ": float((at_loss > 1e-6).float().mean()),
        "halved": int((area_low <= 0.5 * area_full).sum()),
        "vanished": int((area_low == 0).sum()),
        **{f"{k}_{name}": float(v) for name, terms in losses.items()
           for k, v in (("bce", terms["loss_mask"]), ("dice", terms["loss_dice"]))},
    }


def synthetic_masks(scenes: int, seed: int, image_size: int = 64) -> torch.Tensor:
    """(N, S, S) visible-object masks of seeded synthetic scenes (the demo's generator)."""
    rng = np.random.default_rng(seed)
    masks = []
    for _ in range(scenes):
        objects = sample_image_scene(rng, image_size)
        _, visible, _ = render(objects, (image_size, image_size), (0, 0, 0))
        masks += [visible[o.id] for o in objects]
    return torch.from_numpy(np.stack(masks))


def report(name: str, r: dict[str, float]) -> str:
    return (f"{name}: {r['objects']} masks; targets at uniform points: mean |diff| "
            f"{r['mean_abs_diff']:.4f}, {r['points_differ']:.2%} of points differ; at the "
            f"loss's points: {r['loss_mean_abs_diff']:.4f}, {r['loss_points_differ']:.2%}; "
            f"low-res mask <= half its area: {r['halved']}, empty: {r['vanished']}; "
            f"fixed prediction BCE pred {r['bce_pred']:.4f} / input {r['bce_input']:.4f}, "
            f"Dice pred {r['dice_pred']:.4f} / input {r['dice_input']:.4f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=50, help="synthetic 64 px scenes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    horse = torch.from_numpy(~data.horse())[None]   # the silhouette is the dark part
    print(report("1B (horse 328x400, S=1024: 256 vs 1024, 12544 points)",
                 compare(horse, 256, 1024, 12544, args.seed)))
    tiny = synthetic_masks(args.scenes, args.seed)
    print(report("tiny (synthetic 64x64, S=64: 16 vs 64, 256 points)",
                 compare(tiny, 16, 64, 256, args.seed)))


if __name__ == "__main__":
    main()
