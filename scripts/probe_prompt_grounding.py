"""Can the tiny SAM-2 grounding segment the object its prompt names? (issue 13, item 1)

The smallest experiment behind the demo's referring: no MLLM, no text. SAM-2 (the demo's
tiny preset, `SAM2Grounding` exactly as the demo builds it) gets, as its language prompt,
a learned embedding per (colour, shape) pair - a distinct prompt per kind of object - and
must segment the objects of that kind alone in synthetic scenes (`synthetic_scene`). Each
step trains on one object per scene of a batch; the score is per-object IoU on held-out
scenes (union over the batch, as cIoU), beside two yardsticks on the same objects:
"every object" (the union of all objects of the image) and the best the prompt allows.

    python scripts/probe_prompt_grounding.py --steps 300
    python scripts/probe_prompt_grounding.py --steps 300 --variant shared_prompt  # control

Variants (`--variant`) switch one suspect of the prompt path at a time; see VARIANTS.
Two options test whether the grounding can refer by shape (docs/demo.md "Colour, not
shape"): `--mono-fraction F` draws that share of the *training* scenes in one colour, so
only shape tells their objects apart (evaluation scenes stay as they are);
`--pretrain-shape-steps N` first trains the image encoder alone for N steps to label each
pixel with the shape under it (a 1 x 1 head on its three feature levels), so the
grounding starts from features that carry shape. The prediction's IoU with the target's
colour union and shape union says which of the two the prompt conditions.
Prints one JSON line per evaluation and a final JSON summary (also to --out).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from mpr_cma.datasets.synthetic_scene import COLOURS, SHAPES, render, sample_image_scene
from mpr_cma.losses.segmentation import dice_loss, sigmoid_bce_loss
from mpr_cma.models.grounding import SAM2Grounding

KINDS = [(c, s) for c in COLOURS for s in SHAPES]
BACKGROUND = (60, 60, 60)
PIXEL_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
PIXEL_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
# Masks of a batch: the prompted objects, and the yardsticks scored against them.
MASKS = ("target", "every", "colour", "shape")
# One suspect of the prompt path per variant (None = the demo's grounding as configured).
VARIANTS = {
    "demo": "the demo's SAM2Grounding (tiny preset, single mask, trained encoder)",
    "frozen_encoder": "image encoder frozen (random features), as in the paper's recipe",
    "multimask": "SAM-2's multimask output, best predicted IoU kept",
    "shared_prompt": "control: one prompt for every kind, so nothing tells the objects apart",
    "head_width": "decoder attention with dim // 32 heads: the real model's head widths "
                  "(32 in self-, 16 in cross-attention) instead of 8 heads of 4 / 2",
}


def make_batch(rng: np.random.Generator, n: int, size: int,
               mono_fraction: float = 0.0) -> dict[str, torch.Tensor]:
    """n scenes, one prompted kind each; each scene is drawn in a single colour with
    probability `mono_fraction` (then its target is every object of the prompted shape).

    Returns:
        {"pixels": (n, 3, S, S) fp32 normalised as SAM-2 expects, "kind": (n,) int64 prompt
        index, and (n, S, S) bool masks: "target" (the objects of that kind), "every"
        (all objects), "colour" / "shape" (all objects of the target's colour / shape)}.
    """
    rows: dict[str, list] = {k: [] for k in ("pixels", "kind", *MASKS)}
    for _ in range(n):
        mono = mono_fraction > 0 and rng.random() < mono_fraction
        objects = sample_image_scene(rng, size, n_colours=1 if mono else None)
        image, visible, _ = render(objects, (size, size), BACKGROUND)
        obj = objects[int(rng.integers(len(objects)))]
        rows["pixels"].append(normalise(image))
        rows["kind"].append(KINDS.index((obj.colour, obj.shape)))
        keys = {"target": lambda o: (o.colour, o.shape), "every": lambda o: 0,
                "colour": lambda o: o.colour, "shape": lambda o: o.shape}
        for name, key in keys.items():
            mask = np.zeros((size, size), bool)
            for o in objects:
                if key(o) == key(obj):
                    mask |= visible[o.id]
            rows[name].append(torch.from_numpy(mask))
    batch = {k: torch.stack(v) for k, v in rows.items() if k != "kind"}
    batch["kind"] = torch.tensor(rows["kind"])
    return batch


def normalise(image: np.ndarray) -> torch.Tensor:
    """(S, S, 3) uint8 RGB -> (3, S, S) fp32 normalised as SAM-2 expects."""
    return (torch.from_numpy(image).permute(2, 0, 1).float() / 255 - PIXEL_MEAN) / PIXEL_STD


def shape_batch(rng: np.random.Generator, n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n scenes and their per-pixel shape labels: (n, 3, S, S) fp32, (n, S, S) int64 with
    0 = background, 1 + SHAPES.index(shape) under an object."""
    pixels, labels = [], []
    for _ in range(n):
        objects = sample_image_scene(rng, size)
        image, visible, _ = render(objects, (size, size), BACKGROUND)
        label = np.zeros((size, size), np.int64)
        for o in objects:
            label[visible[o.id]] = SHAPES.index(o.shape) + 1
        pixels.append(normalise(image))
        labels.append(torch.from_numpy(label))
    return torch.stack(pixels), torch.stack(labels)


def pretrain_shape(model: SAM2Grounding, steps: int, size: int, lr: float, seed: int,
                   batch: int = 8, n_eval: int = 32) -> float:
    """Train the image encoder (Hiera + neck, and the decoder's stride-4 / 8 projections,
    which SAM-2 applies to the encoder's high-resolution levels) to label every pixel with
    the shape under it, through a 1 x 1 head on the three levels (bilinearly resized to the
    stride-4 grid). Returns the head's accuracy on held-out object pixels (chance: ~0.25)."""
    decoder = model.sam2_model.sam_mask_decoder
    modules = (model.sam2_model.image_encoder, decoder.conv_s0, decoder.conv_s1)
    dim = model.hidden_dim
    head = torch.nn.Conv2d(dim // 8 + dim // 4 + dim, len(SHAPES) + 1, 1)
    params = [p for m in modules for p in m.parameters()] + list(head.parameters())
    optim = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    grid = (size // 4, size // 4)

    def logits(pixels: torch.Tensor) -> torch.Tensor:
        features = model.encode(pixels)
        levels = [*features.high_res, features.image_embed]
        stacked = torch.cat([F.interpolate(x, size=grid, mode="bilinear", align_corners=False)
                             for x in levels], 1)
        return F.interpolate(head(stacked), size=(size, size), mode="bilinear",
                             align_corners=False)

    # Background is most pixels; weight it down so the head does not settle on it.
    weight = torch.tensor([0.2] + [1.0] * len(SHAPES))
    rng = np.random.default_rng([seed, 2])
    for _ in range(steps):
        pixels, labels = shape_batch(rng, batch, size)
        loss = F.cross_entropy(logits(pixels), labels, weight=weight)
        optim.zero_grad()
        loss.backward()
        optim.step()
    pixels, labels = shape_batch(np.random.default_rng([seed, 3]), n_eval, size)
    with torch.no_grad():
        pred = logits(pixels).argmax(1)
    on_object = labels > 0
    return round((pred[on_object] == labels[on_object]).float().mean().item(), 4)


def build(variant: str, size: int, dim: int = 32, trunk_dim: int = 8) -> SAM2Grounding:
    """The tiny grounding of configs/tiny/demo.py (width `dim`, Hiera stage-1 width
    `trunk_dim`), one suspect switched by `variant`."""
    if variant not in VARIANTS:
        raise ValueError(f"--variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    model = SAM2Grounding(
        image_size=size, size_preset="tiny", preset_dim=dim, preset_trunk_dim=trunk_dim,
        object_gating="never",
        train_image_encoder=variant != "frozen_encoder",
        multimask_output=variant == "multimask",
    )
    if variant == "head_width":
        for module in model.sam2_model.sam_mask_decoder.transformer.modules():
            if hasattr(module, "num_heads"):
                module.num_heads = max(1, dim // 32)
    return model


class SharedPrompt(torch.nn.Module):
    """The control's prompt table: one learned embedding returned for every kind."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(dim))

    def forward(self, kinds: torch.Tensor) -> torch.Tensor:
        """(n,) int64 -> (n, C) fp32, the same row for all."""
        return self.weight.expand(len(kinds), -1)


def predict(model: SAM2Grounding, prompts: torch.nn.Embedding, pixels: torch.Tensor,
            kinds: torch.Tensor) -> torch.Tensor:
    """(n, S, S) fp32 mask logits of each scene's prompted kind."""
    features = model.encode(pixels)
    out = model.segment_images(features, torch.arange(len(kinds)), prompts(kinds)[:, None])
    return model.upsample_masks(out["pred_masks"], pixels.shape[-2:])[:, 0]


def iou(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Cumulative IoU (sum of intersections / sum of unions) of bool masks."""
    inter = (pred & target).sum().item()
    union = (pred | target).sum().item()
    return inter / max(union, 1)


def run_probe(steps: int = 300, variant: str = "demo", size: int = 64, batch: int = 8,
              lr: float = 1e-3, seed: int = 0, eval_every: int = 100, n_eval: int = 64,
              bce_weight: float = 0.5, dice_weight: float = 2.0, progress: bool = True,
              dim: int = 32, trunk_dim: int = 8, mono_fraction: float = 0.0,
              pretrain_shape_steps: int = 0) -> dict:
    """Train SAM-2 + a prompt table for `steps` AdamW steps; return the scores.

    `mono_fraction` of the training scenes are single-coloured; `pretrain_shape_steps` > 0
    first trains the encoder on per-pixel shape labels (`pretrain_shape`).

    Returns:
        {"variant", "size", "dim", "trunk_dim", "mono_fraction", "pretrain_shape_steps",
         "pretrain_shape_accuracy" (None without pretraining), "steps", "seconds",
         "iou" (final IoU with the target),
         "yardsticks": {"every", "colour", "shape"} (IoU of those unions with the target),
         "history": [{"step", "loss", "target", "colour", "shape"}] (the prediction's IoU
         with each)}.
    """
    torch.manual_seed(seed)
    if not 0.0 <= mono_fraction <= 1.0:
        raise ValueError(f"--mono-fraction must be in [0, 1], got {mono_fraction}")
    model = build(variant, size, dim, trunk_dim)
    start = time.time()
    shape_accuracy = (pretrain_shape(model, pretrain_shape_steps, size, lr, seed)
                      if pretrain_shape_steps > 0 else None)
    prompts = torch.nn.Embedding(len(KINDS), model.hidden_dim)
    if variant == "shared_prompt":
        prompts = SharedPrompt(model.hidden_dim)
    params = [p for p in model.parameters() if p.requires_grad] + list(prompts.parameters())
    optim = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    eval_set = make_batch(np.random.default_rng([seed, 1]), n_eval, size)
    rng = np.random.default_rng([seed, 0])
    history = []

    def evaluate() -> float:
        model.eval()
        with torch.no_grad():
            logits = torch.cat([predict(model, prompts, eval_set["pixels"][i:i + 16],
                                        eval_set["kind"][i:i + 16])
                                for i in range(0, n_eval, 16)])
        model.train()
        pred = logits > 0
        # IoU with the target, and with the objects of its colour / shape: which one the
        # prediction follows tells what the prompt conditions.
        return {name: round(iou(pred, eval_set[name]), 4) for name in ("target", "colour",
                                                                        "shape")}

    bar = tqdm(range(1, steps + 1), desc=f"probe {variant}", disable=not progress,
               file=sys.stderr)
    loss_value = float("nan")
    for step in bar:
        data = make_batch(rng, batch, size, mono_fraction)
        logits = predict(model, prompts, data["pixels"], data["kind"])
        target = data["target"].float()
        loss = bce_weight * sigmoid_bce_loss(logits, target) + dice_weight * dice_loss(
            logits, target)
        optim.zero_grad()
        loss.backward()
        optim.step()
        loss_value = loss.item()
        bar.set_postfix(loss=f"{loss_value:.3f}")
        if step % eval_every == 0 or step == steps:
            history.append({"step": step, "loss": round(loss_value, 4), **evaluate()})
            bar.write(json.dumps(history[-1]), file=sys.stderr)
    return {
        "variant": variant, "size": size, "dim": dim, "trunk_dim": trunk_dim,
        "mono_fraction": mono_fraction, "pretrain_shape_steps": pretrain_shape_steps,
        "pretrain_shape_accuracy": shape_accuracy, "steps": steps,
        "seconds": round(time.time() - start, 1),
        "iou": history[-1]["target"],
        # Yardsticks against the target: all objects, the target's colour, its shape.
        "yardsticks": {name: round(iou(eval_set[name], eval_set["target"]), 4)
                       for name in ("every", "colour", "shape")},
        "history": history,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--variant", default="demo", choices=sorted(VARIANTS))
    parser.add_argument("--size", type=int, default=64, help="image and SAM-2 input size")
    parser.add_argument("--dim", type=int, default=32, help="SAM-2 width C (tiny: 32)")
    parser.add_argument("--trunk-dim", type=int, default=8,
                        help="Hiera stage-1 width of the tiny preset (its default: 8)")
    parser.add_argument("--mono-fraction", type=float, default=0.0,
                        help="share of training scenes drawn in one colour")
    parser.add_argument("--pretrain-shape-steps", type=int, default=0,
                        help="first train the encoder on per-pixel shape labels this long")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--out", type=Path, help="also write the summary JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    result = run_probe(args.steps, args.variant, args.size, args.batch, args.lr, args.seed,
                       args.eval_every, dim=args.dim, trunk_dim=args.trunk_dim,
                       mono_fraction=args.mono_fraction,
                       pretrain_shape_steps=args.pretrain_shape_steps)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
