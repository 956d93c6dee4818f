"""How far the former SAM-2 input and mask output rules are from Sa2VA's (docs/sa2va_parity.md).

Usage:
    python scripts/sa2va_parity_sizes.py [--size 1024]

Prints, for a natural image (scikit-image's bundled `rocket`, 427 x 640):
- resize: Sa2VA's PIL bicubic uint8 resize to S x S vs the former torch bilinear
  (antialiased) resize of the float image, in grey levels;
- normalisation: Sa2VA's image-inference input (bf16) vs its training input (fp32), and
  its image vs video inference paths, in normalised units;
for a fixed smooth 256 x 256 logit field (an ellipse with a ripple) resized to the image:
the mask pixels where the former direct 256 -> H x W resize with `logits > 0` differs from
Sa2VA's 256 -> S -> H x W with `sigmoid > 0.5`; and, on the seeded tiny model
(`configs/tiny/sa2va_mba_tiny.py`, fp32, CPU), the two places where our predict path
computes what Sa2VA computes another way: the [SEG] hidden state of a teacher-forced pass
vs the KV-cached one of generation, and several [SEG] as rows of one SAM-2 call vs one call
each.
"""

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from skimage import data

from mpr_cma.engine.config import load_config
from mpr_cma.models.grounding.transforms import (
    PIXEL_MEAN,
    PIXEL_STD,
    logits_to_masks,
    normalize,
    resize_frames,
    upsample_mask_logits,
)
from mpr_cma.models.inference import encode_prompt
from mpr_cma.registry import MODELS

TINY_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny" / "sa2va_mba_tiny.py"


def former_input(image: np.ndarray, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The former rule: float bilinear resize with antialias, fp32 statistics."""
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                      antialias=True)
    mean = torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(PIXEL_STD).view(1, 3, 1, 1)
    return x, (x / 255.0 - mean) / std


def logit_field(n: int = 256) -> torch.Tensor:
    """A smooth (1, 1, n, n) logit map: positive inside an ellipse, with a ripple."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, n), torch.linspace(-1, 1, n), indexing="ij")
    r = ((x - 0.1) / 0.55) ** 2 + ((y + 0.05) / 0.35) ** 2
    return (8.0 * (1.0 - r) + 1.5 * torch.sin(9 * x) * torch.cos(7 * y))[None, None]


@torch.no_grad()
def tiny_model_checks() -> tuple[float, float]:
    """(max |KV-cached - teacher-forced| [SEG] hidden state, max |batched - one call| logit)."""
    torch.manual_seed(0)
    model = MODELS.build(load_config(TINY_CONFIG).model).eval()
    tile = model.mllm.vision_model.image_size
    pixels = torch.randn(1, 3, tile, tile, generator=torch.Generator().manual_seed(0))
    ids, span = encode_prompt(model.tokenizer, "the red circle", model.mllm.num_image_token)
    answer = model.tokenizer.encode("[SEG] and [SEG].", add_special_tokens=False)
    llm = model.mllm.language_model
    out = llm(inputs_embeds=model.mllm.embed_inputs(torch.tensor([ids]), pixels),
              use_cache=True, return_dict=True)
    cached = []
    for token in answer:  # generation's view: each answer token fed through the cache
        out = llm(input_ids=torch.tensor([[token]]), past_key_values=out.past_key_values,
                  use_cache=True, output_hidden_states=True, return_dict=True)
        cached.append(out.hidden_states[-1][0, -1])
    full = torch.tensor([ids + answer])
    hidden = model.mllm(full, pixels, output_hidden_states=True).hidden_states[-1]
    segs = [i for i, t in enumerate(answer) if t == model.seg_token_id]
    kv = max((cached[i] - hidden[0, len(ids) + i]).abs().max().item() for i in segs)
    text = model.object_text(hidden, full, [len(segs)], [[span] * len(segs)])
    grounding = model.grounding
    image = torch.randint(0, 256, (1, 3, 40, 50), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(1))
    features = grounding.encode(grounding.preprocess(image))
    rows = grounding.segment_images(features, torch.zeros(len(segs), dtype=torch.long),
                                    text["prompt"], text["text"], text["text_mask"])
    batched = 0.0
    for k in range(len(segs)):
        one = grounding.segment_images(features, torch.zeros(1, dtype=torch.long),
                                       text["prompt"][k:k + 1], text["text"][k:k + 1],
                                       text["text_mask"][k:k + 1])
        batched = max(batched, (one["pred_masks"][0] - rows["pred_masks"][k]).abs().max().item())
    return kv, batched


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="SAM-2 input size S")
    size = parser.parse_args(argv).size
    image = data.rocket()
    h, w = image.shape[:2]
    pil = resize_frames([image], size)
    old_pixels, old_input = former_input(image, size)
    diff = (old_pixels - pil.float()).abs()
    print(f"image {h}x{w} -> {size}x{size}")
    print(f"resize, former vs PIL bicubic: mean |diff| {diff.mean():.3f} grey levels, "
          f"max {diff.max():.0f}")
    train, infer, video = (normalize(pil, m) for m in ("fp32", "bf16", "bf16_stats"))
    print(f"SAM-2 input, former vs Sa2VA inference (image): mean |diff| "
          f"{(old_input - infer).abs().mean():.4f}, max {(old_input - infer).abs().max():.3f}")
    d = (infer - train).abs()
    print(f"normalisation, inference bf16 vs training fp32: mean |diff| {d.mean():.5f}, "
          f"max {d.max():.4f} (normalised units)")
    print(f"normalisation, image vs video inference path: {(infer != video).float().mean():.3%}"
          f" of the values differ, max {(infer - video).abs().max():.4f}")
    low = logit_field()
    ours = logits_to_masks(upsample_mask_logits(low, size, (h, w)))
    former = F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False) > 0
    changed = (ours != former).sum().item()
    print(f"mask, former 256->HxW & logits>0 vs Sa2VA 256->S->HxW & sigmoid>0.5: {changed} "
          f"of {h * w} pixels differ ({changed / max(int(ours.sum()), 1):.3%} of the mask's "
          f"{int(ours.sum())} pixels)")
    kv, batched = tiny_model_checks()
    print(f"tiny model, [SEG] hidden state KV-cached vs teacher-forced: max |diff| {kv:.2e}")
    print(f"tiny model, two [SEG] in one SAM-2 call vs one call each: max |logit diff| "
          f"{batched:.2e}")


if __name__ == "__main__":
    main()
