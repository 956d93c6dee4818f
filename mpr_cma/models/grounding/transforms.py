"""SAM-2's input and output transforms, as Sa2VA applies them.

Input (`sam2_input` = `resize_frames` + `normalize`):
- resize: Sa2VA's `DirectResize(1024)` (`projects/sa2va/models/preprocess/image_resize.py`,
  also in `hf/models/modeling_sa2va_chat.py`): each RGB uint8 frame goes through PIL's
  `Image.resize((S, S))`, whose default filter for RGB is bicubic, and stays uint8;
- normalise: `(x / 255 - mean) / std` with the ImageNet statistics, in the precision of the
  Sa2VA code path it copies (`NORMALIZE_MODES`):
  - "fp32": training (`SAM2TrainRunner.preprocess_image` builds the statistics in the
    image's dtype, fp32 for the uint8 frames of its datasets);
  - "bf16": image inference (`predict_forward` casts the uint8 image to bf16 before
    `SAM2.preprocess_image`, which builds bf16 statistics: every step rounds to bf16);
  - "bf16_stats": video inference (`predict_forward` keeps the frames uint8: fp32
    arithmetic with the bf16-rounded statistics, the result cast to bf16).
  The bf16 modes return fp32 tensors holding exactly the bf16 values Sa2VA feeds SAM-2, so
  fp32 models (the tiny CPU ones) see Sa2VA's input too.

Output (`upsample_mask_logits`, `logits_to_masks`): Sa2VA's SAM-2 video predictor resizes
the 4h x 4w mask logits bilinearly (align_corners=False) to its "video" size, which its
`init_state` sets to the SAM-2 input size S, then `predict_forward` resizes those to the
frame's H x W the same way and keeps `sigmoid(logits) > 0.5`.
"""

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

# SAM-2's input normalisation (ImageNet statistics on [0, 1] pixels).
PIXEL_MEAN = (0.485, 0.456, 0.406)
PIXEL_STD = (0.229, 0.224, 0.225)
NORMALIZE_MODES = ("fp32", "bf16", "bf16_stats")

Frames = Tensor | Sequence[np.ndarray | Image.Image]


def _as_hwc_arrays(frames: Frames) -> list[np.ndarray]:
    """(F, 3, H, W) uint8 tensor, or HWC uint8 arrays / PIL images -> HWC uint8 RGB arrays."""
    if isinstance(frames, Tensor):
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise ValueError(f"frames must be (F, 3, H, W), got {tuple(frames.shape)}")
        if frames.dtype != torch.uint8:
            raise ValueError(f"frames must be uint8 (Sa2VA resizes uint8 images with PIL), "
                             f"got {frames.dtype}")
        return list(frames.detach().cpu().permute(0, 2, 3, 1).numpy())
    arrays = []
    for i, frame in enumerate(frames):
        array = np.asarray(frame.convert("RGB") if isinstance(frame, Image.Image) else frame)
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"frame {i} must be an RGB uint8 (H, W, 3) image, got "
                             f"{array.dtype} {array.shape}")
        arrays.append(array)
    return arrays


def resize_frames(frames: Frames, size: int) -> Tensor:
    """Sa2VA's DirectResize: PIL bicubic resize of each RGB uint8 frame to size x size.

    Args:
        frames: (F, 3, H, W) uint8 tensor, or F RGB images (PIL or (H, W, 3) uint8 arrays).
        size: SAM-2's input size S.

    Returns:
        (F, 3, S, S) uint8 tensor on the CPU.
    """
    arrays = _as_hwc_arrays(frames)
    if not arrays:
        raise ValueError("no frames to resize")
    resized = [np.asarray(Image.fromarray(a).resize((size, size), Image.Resampling.BICUBIC))
               for a in arrays]
    return torch.from_numpy(np.stack(resized)).permute(0, 3, 1, 2).contiguous()


def normalize(pixels: Tensor, mode: str = "fp32") -> Tensor:
    """ImageNet normalisation of uint8 pixels in the precision of a Sa2VA code path.

    Args:
        pixels: (F, 3, S, S) uint8.
        mode: one of `NORMALIZE_MODES` (see the module docstring).

    Returns:
        (F, 3, S, S) fp32 (holding bf16 values in the bf16 modes).
    """
    if mode not in NORMALIZE_MODES:
        raise ValueError(f"normalize mode must be one of {NORMALIZE_MODES}, got {mode!r}")
    if pixels.dtype != torch.uint8:
        raise ValueError(f"pixels must be uint8, got {pixels.dtype}")
    stats_dtype = torch.float32 if mode == "fp32" else torch.bfloat16
    mean = torch.tensor(PIXEL_MEAN, dtype=stats_dtype, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(PIXEL_STD, dtype=stats_dtype, device=pixels.device).view(1, 3, 1, 1)
    x = pixels.to(torch.bfloat16) if mode == "bf16" else pixels
    x = (x / 255.0 - mean) / std  # bf16 mode: each operation rounds to bf16, as in Sa2VA
    return x.to(torch.bfloat16).float() if mode != "fp32" else x


def sam2_input(frames: Frames, size: int, mode: str = "fp32") -> Tensor:
    """`resize_frames` then `normalize`: (F, 3, S, S) fp32 SAM-2 input on the CPU."""
    return normalize(resize_frames(frames, size), mode)


def upsample_mask_logits(mask_logits: Tensor, input_size: int, size: tuple[int, int]) -> Tensor:
    """Sa2VA's mask resize: (B, K, h, w) logits -> S x S -> H x W, bilinear, fp32.

    Args:
        mask_logits: (B, K, h, w) low-res logits (SAM-2's 4h x 4w masks).
        input_size: SAM-2's input size S (the intermediate size).
        size: the frame's (H, W).

    Returns:
        (B, K, H, W) fp32 logits.
    """
    x = mask_logits.float()
    if tuple(x.shape[-2:]) != (input_size, input_size):
        x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", align_corners=False)
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
    return x


def logits_to_masks(logits: Tensor) -> Tensor:
    """Sa2VA's threshold: `sigmoid(logits) > 0.5` (bool, same shape)."""
    return logits.float().sigmoid() > 0.5
