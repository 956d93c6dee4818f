"""Mask and attention overlays (paper Fig. 4 and Fig. 5 style) on uint8 RGB images.

All functions take and return numpy arrays: images (H, W, 3) uint8 RGB, masks (H, W) bool,
heat maps (h, w) float (resized to the image). Nothing is read or written here; tools
save the results (OpenCV expects BGR: flip the channels when writing with cv2).
"""

import cv2
import numpy as np
import torch

# Distinct colours (RGB) for the objects of one image; cycled beyond their number.
PALETTE = ((255, 56, 56), (56, 168, 255), (72, 219, 72), (255, 196, 0), (196, 88, 255),
           (0, 212, 212), (255, 128, 64), (160, 160, 160))


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    return image


def _check_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    mask = np.asarray(mask).astype(bool)
    if mask.shape != size:
        raise ValueError(f"mask shape {mask.shape} differs from the image size {size}")
    return mask


def overlay_masks(image: np.ndarray, masks: np.ndarray | list[np.ndarray],
                  colors: list[tuple[int, int, int]] | None = None, alpha: float = 0.5,
                  contour_thickness: int = 2) -> np.ndarray:
    """Colour translucent masks with their contours onto an image.

    Args:
        image: (H, W, 3) uint8 RGB.
        masks: one (H, W) bool mask, or (O, H, W) / a list of O masks (one colour each).
        colors: RGB colour per mask (default `PALETTE`, cycled).
        alpha: opacity of the mask fill in [0, 1].
        contour_thickness: contour width in pixels (0: no contour).

    Returns:
        (H, W, 3) uint8 RGB, a new array.
    """
    image = _check_image(image)
    stack = np.asarray(masks)
    if stack.ndim == 2:
        stack = stack[None]
    out = image.astype(np.float32)
    colors = colors or [PALETTE[i % len(PALETTE)] for i in range(len(stack))]
    contours = []
    for mask, color in zip(stack, colors, strict=True):
        mask = _check_mask(mask, image.shape[:2])
        out[mask] = (1 - alpha) * out[mask] + alpha * np.asarray(color, np.float32)
        if contour_thickness > 0 and mask.any():
            found, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                        cv2.CHAIN_APPROX_NONE)
            contours.append((found, color))
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    for found, color in contours:
        cv2.drawContours(out, found, -1, tuple(int(c) for c in color), contour_thickness)
    return out


def normalize_map(heat: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """Min-max normalise a heat map to [0, 1], optionally resized (bilinear) to (H, W)."""
    heat = np.asarray(heat, dtype=np.float32)
    if heat.ndim != 2:
        raise ValueError(f"heat map must be 2-D, got shape {heat.shape}")
    if size is not None and heat.shape != tuple(size):
        heat = cv2.resize(heat, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    low, high = float(heat.min()), float(heat.max())
    return (heat - low) / (high - low) if high > low else np.zeros_like(heat)


def overlay_heatmap(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5,
                    colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """Blend a (min-max normalised) heat map onto an image.

    Args:
        image: (H, W, 3) uint8 RGB.
        heat: (h, w) float map, any range and resolution (resized to H x W).
        alpha: opacity of the heat map.
        colormap: an OpenCV colormap.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    image = _check_image(image)
    heat = normalize_map(heat, image.shape[:2])
    colored = cv2.applyColorMap(np.rint(heat * 255).astype(np.uint8), colormap)[..., ::-1]
    out = (1 - alpha) * image.astype(np.float32) + alpha * colored.astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def attention_maps(info: dict, gated: bool = True, row: int = 0) -> np.ndarray:
    """Per-token MBA attention maps of one object, averaged over heads.

    Args:
        info: MBA's attention info (`MaskBiasedAttention(..., return_attention=True)`):
            `attn` / `attn_gated` (B, heads, H, W, K) and `token_valid` (B, K) if present.
        gated: use `attn_gated` (attention times the mask gate G: what reaches F_v').
        row: the object (batch row).

    Returns:
        (K', H, W) float32, one map per routed token that is valid (K' <= K).
    """
    attn = info["attn_gated" if gated else "attn"][row].float().mean(dim=0)  # (H, W, K)
    maps = attn.permute(2, 0, 1)
    valid = info.get("token_valid")
    if valid is not None:
        maps = maps[valid[row].bool().to(maps.device)]
    return maps.detach().cpu().numpy()


def attention_summary_map(info: dict, gated: bool = True, row: int = 0) -> np.ndarray:
    """One (H, W) map for an object: the strongest routed token's attention at each pixel.

    The attention over tokens sums to 1 at every pixel, so the sum is uninformative; the
    maximum shows where some token dominates (times the gate when `gated`).
    """
    maps = attention_maps(info, gated=gated, row=row)
    if maps.shape[0] == 0:
        return np.zeros(info["attn"].shape[2:4], dtype=np.float32)
    return torch.from_numpy(maps).amax(dim=0).numpy()
