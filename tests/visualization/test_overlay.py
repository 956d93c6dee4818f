"""Mask and attention overlays: colours, contours, shapes, bad inputs."""

import numpy as np
import pytest
import torch

from mpr_cma.models import MaskBiasedAttention
from mpr_cma.visualization import (
    attention_maps,
    attention_summary_map,
    normalize_map,
    overlay_heatmap,
    overlay_masks,
)


def _image_and_mask():
    image = np.full((20, 30, 3), 100, np.uint8)
    mask = np.zeros((20, 30), bool)
    mask[5:15, 8:20] = True
    return image, mask


def test_overlay_blends_inside_draws_contour_and_leaves_outside():
    image, mask = _image_and_mask()
    out = overlay_masks(image, mask, colors=[(200, 0, 0)], alpha=0.5, contour_thickness=1)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert out[10, 14].tolist() == [150, 50, 50]      # interior: half image, half colour
    assert out[5, 14].tolist() == [200, 0, 0]         # boundary pixel: contour colour
    assert (out[0:3] == 100).all() and (out[:, 25:] == 100).all()  # far outside unchanged
    assert (image == 100).all()                       # the input is not modified


def test_overlay_several_masks_and_empty_mask():
    image, mask = _image_and_mask()
    out = overlay_masks(image, np.stack([mask, ~mask]), contour_thickness=0, alpha=1.0)
    assert out[10, 14].tolist() != out[0, 0].tolist()
    empty = overlay_masks(image, np.zeros((20, 30), bool))
    assert np.array_equal(empty, image)


@pytest.mark.parametrize("bad", [np.zeros((20, 31), bool), np.zeros((2, 20, 31), bool)])
def test_overlay_rejects_a_mask_of_another_size(bad):
    image, _ = _image_and_mask()
    with pytest.raises(ValueError, match="differs from the image size"):
        overlay_masks(image, bad)


def test_overlay_rejects_non_uint8_images():
    with pytest.raises(ValueError, match="uint8 RGB"):
        overlay_masks(np.zeros((4, 4, 3), np.float32), np.zeros((4, 4), bool))


def test_heatmap_normalises_and_resizes():
    heat = np.array([[0.0, 1.0], [2.0, 4.0]])
    norm = normalize_map(heat)
    assert norm.min() == 0.0 and norm.max() == 1.0 and norm[1, 0] == 0.5
    assert normalize_map(heat, (6, 8)).shape == (6, 8)
    assert not normalize_map(np.ones((3, 3))).any()   # constant map: zeros, no NaN
    image, _ = _image_and_mask()
    out = overlay_heatmap(image, heat)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert not np.array_equal(out[0, 0], out[-1, -1])


def test_attention_maps_of_a_real_mba_call_keep_valid_tokens_only():
    torch.manual_seed(0)
    mba = MaskBiasedAttention(dim=16, num_heads=2, top_k=4).eval()
    text_mask = torch.tensor([[True, True, True, False, False], [True] * 5])
    _, info = mba(torch.randn(2, 16, 6, 7), torch.randn(2, 5, 16), torch.randn(2, 1, 6, 7),
                  text_mask, return_attention=True)
    valid = int(info["token_valid"][0].sum())
    maps = attention_maps(info, row=0, gated=False)
    assert maps.shape == (valid, 6, 7)
    # Over all (valid) routed tokens the attention of every pixel sums to 1.
    np.testing.assert_allclose(maps.sum(0), 1.0, rtol=1e-5)
    gated = attention_maps(info, row=0)
    gate = info["gate"][0, 0].numpy()
    np.testing.assert_allclose(gated.sum(0), gate, rtol=1e-5, atol=1e-6)
    assert attention_summary_map(info, row=1).shape == (6, 7)
