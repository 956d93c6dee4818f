"""SAM-2 input and mask output as Sa2VA computes them, against re-implementations of its
code paths (DirectResize + preprocess_image; the predictor's and predict_forward's
interpolations) on fixed arrays."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.functional import to_pil_image

from mpr_cma.models.grounding.transforms import (
    logits_to_masks,
    normalize,
    resize_frames,
    sam2_input,
    upsample_mask_logits,
)

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def fixed_image(h=37, w=53):
    """A deterministic RGB uint8 image with gradients and edges (no RNG)."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 7 + y * 3) % 256, (x * y) % 256, ((x - y) * 11) % 256], axis=-1)
    return img.astype(np.uint8)


def sa2va_direct_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Sa2VA's DirectResize.apply_image, as written there: to_pil_image + default resize."""
    return np.array(to_pil_image(image, mode="RGB").resize((size, size)))


def sa2va_image_inference_input(image: np.ndarray, size: int) -> torch.Tensor:
    """predict_forward's image path: uint8 -> bf16, then SAM2.preprocess_image (bf16 stats,
    in-place ops), then .to(bf16)."""
    g = torch.from_numpy(sa2va_direct_resize(image, size)).permute(2, 0, 1).contiguous()
    g = g.to(torch.bfloat16)
    g = g / 255.0
    g -= torch.tensor(MEAN, dtype=torch.bfloat16)[:, None, None]
    g /= torch.tensor(STD, dtype=torch.bfloat16)[:, None, None]
    return g.to(torch.bfloat16)


def sa2va_video_inference_input(image: np.ndarray, size: int) -> torch.Tensor:
    """predict_forward's video path: the uint8 frame through preprocess_image (fp32
    arithmetic, bf16 statistics), then .to(bf16)."""
    g = torch.from_numpy(sa2va_direct_resize(image, size)).permute(2, 0, 1).contiguous()
    g = g / 255.0
    g -= torch.tensor(MEAN, dtype=torch.bfloat16)[:, None, None]
    g /= torch.tensor(STD, dtype=torch.bfloat16)[:, None, None]
    return g.to(torch.bfloat16)


def sa2va_training_input(image: np.ndarray, size: int) -> torch.Tensor:
    """SAM2TrainRunner.preprocess_image on the dataset's uint8 frame (stats in fp32)."""
    g = torch.from_numpy(sa2va_direct_resize(image, size)).permute(2, 0, 1).contiguous()
    g = g / 255.0
    g -= torch.tensor(MEAN, dtype=g.dtype)[:, None, None]
    g /= torch.tensor(STD, dtype=g.dtype)[:, None, None]
    return g


@pytest.mark.parametrize("size", [64, 96])
def test_resize_is_pil_bicubic_on_uint8(size):
    image = fixed_image()
    out = resize_frames(torch.from_numpy(image).permute(2, 0, 1)[None], size)
    assert out.dtype == torch.uint8 and out.shape == (1, 3, size, size)
    np.testing.assert_array_equal(out[0].permute(1, 2, 0).numpy(),
                                  sa2va_direct_resize(image, size))
    bicubic = np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC))
    bilinear = np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(out[0].permute(1, 2, 0).numpy(), bicubic)
    assert (bicubic != bilinear).any()  # the filter is pinned down by this image
    # PIL images and HWC arrays give the same
    assert torch.equal(resize_frames([Image.fromarray(image), image], size),
                       torch.cat([out, out]))


@pytest.mark.parametrize("mode,reference", [
    ("bf16", sa2va_image_inference_input),
    ("bf16_stats", sa2va_video_inference_input),
    ("fp32", sa2va_training_input),
])
def test_normalisation_equals_sa2va_code_paths(mode, reference):
    image = fixed_image()
    ours = sam2_input([image], 64, mode)[0]
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, reference(image, 64).float(), rtol=0, atol=0)


def test_bf16_statistics_by_hand():
    """A white pixel, red channel: (1 - bf16(0.485)) / bf16(0.229) = 0.515625 / 0.228515625
    = 2.2564..., which bf16 (step 2^-6 in [2, 4)) rounds to 2.25; fp32 stats give 2.2489."""
    white = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    assert normalize(white, "bf16")[0, 0, 0, 0].item() == 2.25
    assert normalize(white, "bf16_stats")[0, 0, 0, 0].item() == 2.25
    assert normalize(white, "fp32")[0, 0, 0, 0].item() == pytest.approx((1 - 0.485) / 0.229)
    # the two bf16 paths differ on other values (per-op rounding vs one final rounding)
    ramp = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16).expand(1, 3, 16, 16)
    assert not torch.equal(normalize(ramp, "bf16"), normalize(ramp, "bf16_stats"))
    with pytest.raises(ValueError, match="uint8"):
        normalize(ramp.float(), "fp32")
    with pytest.raises(ValueError, match="mode"):
        normalize(ramp, "fp16")


def bilinear_reference(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear resize of (h, w) with half-pixel centres and edge clamping
    (F.interpolate(mode="bilinear", align_corners=False, antialias=False)), in float64."""
    def axis(n_in, n_out):
        src = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
        src = np.maximum(src, 0.0)
        i0 = np.floor(src).astype(int)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, src - i0
    y0, y1, wy = axis(x.shape[0], out_h)
    x0, x1, wx = axis(x.shape[1], out_w)
    top = x[y0][:, x0] * (1 - wx) + x[y0][:, x1] * wx
    bottom = x[y1][:, x0] * (1 - wx) + x[y1][:, x1] * wx
    return top * (1 - wy[:, None]) + bottom * wy[:, None]


def test_mask_upsampling_goes_through_the_input_size():
    low = np.array([[-3.0, 1.0, 4.0, -2.0],
                    [2.0, -1.0, 0.5, 3.0],
                    [-4.0, 2.5, -0.5, 1.5],
                    [1.0, -2.0, 3.5, -1.0]])
    ours = upsample_mask_logits(torch.tensor(low, dtype=torch.float32)[None, None], 8, (5, 7))
    assert ours.shape == (1, 1, 5, 7) and ours.dtype == torch.float32
    expected = bilinear_reference(bilinear_reference(low, 8, 8), 5, 7)  # 4 -> S -> H x W
    np.testing.assert_allclose(ours[0, 0].numpy(), expected, rtol=0, atol=1e-5)
    direct = bilinear_reference(low, 5, 7)  # what 4 -> H x W would give
    assert np.abs(direct - expected).max() > 0.1


def test_threshold_is_sigmoid_above_one_half():
    logits = torch.tensor([-1.0, -1e-9, 0.0, 1e-9, 1e-3, 2.0])
    masks = logits_to_masks(logits)
    assert masks.dtype == torch.bool
    # sigmoid(1e-9) rounds to 0.5 in fp32: not > 0.5, although the logit is > 0
    assert masks.tolist() == [False, False, False, False, True, True]
