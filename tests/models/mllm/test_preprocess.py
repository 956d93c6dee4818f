"""InternVL dynamic tiling, the image transform and Sa2VA's key-frame selection."""

import numpy as np
import pytest
import torch
from PIL import Image

from mpr_cma.models.mllm.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_transform,
    candidate_grids,
    dynamic_preprocess,
    find_closest_aspect_ratio,
    load_frame_pixels,
    load_image_tiles,
    num_tokens_per_tile,
    select_key_frames,
)

RED, BLUE, GREEN, YELLOW = (255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 255, 0)


def blocks(colours, cols, rows, size=448):
    """An image of cols x rows solid blocks of `size` px, colours in row-major order."""
    arr = np.zeros((rows * size, cols * size, 3), np.uint8)
    for i, colour in enumerate(colours):
        r, c = divmod(i, cols)
        arr[r * size:(r + 1) * size, c * size:(c + 1) * size] = colour
    return Image.fromarray(arr)


# (width, height, max_num) -> (grid, tiles incl. thumbnail), worked out by hand:
# 896x448 is exactly 2:1 -> 2x1 (4x2 also matches 2:1 but the image fills < half of it);
# 1344x1344 fills > half of 3x3 -> 3x3; 100x100 is too small for 2x2 -> 1x1;
# 800x600 is exactly 4:3 -> 4x3 = 12 tiles, or 3x2 (1.5, closest) when max_num is 6.
CASES = [
    (896, 448, 12, (2, 1), 3),
    (448, 448, 12, (1, 1), 1),
    (100, 100, 12, (1, 1), 1),
    (1344, 1344, 12, (3, 3), 10),
    (448, 1344, 12, (1, 3), 4),
    (4480, 448, 12, (10, 1), 11),
    (4480, 448, 6, (6, 1), 7),
    (1000, 500, 6, (2, 1), 3),
    (800, 600, 12, (4, 3), 13),
    (800, 600, 6, (3, 2), 7),
    (800, 600, 1, (1, 1), 1),
]


@pytest.mark.parametrize("width,height,max_num,grid,num_tiles", CASES)
def test_tile_grid_and_count(width, height, max_num, grid, num_tiles):
    grids = candidate_grids(1, max_num)
    assert find_closest_aspect_ratio(width / height, grids, width, height, 448) == grid
    tiles = dynamic_preprocess(Image.new("RGB", (width, height)), max_num=max_num)
    assert len(tiles) == num_tiles
    assert all(t.size == (448, 448) and t.mode == "RGB" for t in tiles)


def test_candidate_grids():
    assert candidate_grids(1, 2) == [(1, 1), (1, 2), (2, 1)]
    assert len(candidate_grids(1, 12)) == sum(12 // c for c in range(1, 13))
    assert all(2 <= c * r <= 4 for c, r in candidate_grids(2, 4))
    with pytest.raises(ValueError):
        candidate_grids(3, 2)


def test_tiles_are_row_major_then_thumbnail():
    tiles = dynamic_preprocess(blocks([RED, BLUE, GREEN, YELLOW], 2, 2))
    assert len(tiles) == 5
    for tile, colour in zip(tiles[:4], [RED, BLUE, GREEN, YELLOW], strict=True):
        assert np.all(np.asarray(tile) == colour)
    thumb = np.asarray(tiles[4]).astype(int)
    assert np.all(thumb[10, 10] == RED) and np.all(thumb[-10, -10] == YELLOW)


def test_no_thumbnail_when_disabled_or_single_tile():
    assert len(dynamic_preprocess(blocks([RED, BLUE], 2, 1), use_thumbnail=False)) == 2
    assert len(dynamic_preprocess(Image.new("RGB", (448, 448)), use_thumbnail=True)) == 1
    grey = Image.new("L", (896, 448), 7)  # non-RGB input is converted
    assert dynamic_preprocess(grey)[0].mode == "RGB"


@pytest.mark.parametrize("value", [0, 255])
def test_transform_normalises_constant_image(value):
    out = build_transform(448)(Image.new("RGB", (100, 60), (value,) * 3))
    assert out.shape == (3, 448, 448) and out.dtype == torch.float32
    for c in range(3):
        expected = (value / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        assert torch.allclose(out[c], torch.full_like(out[c], expected), atol=1e-6)


def test_load_image_tiles_from_path(tmp_path):
    path = tmp_path / "img.png"
    blocks([RED, BLUE], 2, 1).save(path)
    pix = load_image_tiles(path, max_num=12, image_size=448)
    assert pix.shape == (3, 3, 448, 448)
    red = [(1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], -IMAGENET_MEAN[1] / IMAGENET_STD[1]]
    assert pix[0, 0].mean().item() == pytest.approx(red[0], abs=1e-4)
    assert pix[0, 1].mean().item() == pytest.approx(red[1], abs=1e-4)
    assert pix[1, 2].mean().item() == pytest.approx((1 - IMAGENET_MEAN[2]) / IMAGENET_STD[2],
                                                    abs=1e-4)
    small = load_image_tiles(Image.new("RGB", (112, 56)), max_num=4, image_size=56)
    assert small.shape == (3, 3, 56, 56)


def test_unreadable_images_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        load_image_tiles(tmp_path / "missing.jpg")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"definitely not a jpeg")
    with pytest.raises(OSError, match="broken.jpg"):
        load_image_tiles(broken)


def test_load_frame_pixels_one_tile_per_frame(tmp_path):
    path = tmp_path / "f.png"
    Image.new("RGB", (64, 32)).save(path)
    frames = [Image.new("RGB", (1000, 200)), path, Image.new("L", (30, 90))]
    assert load_frame_pixels(frames, image_size=56).shape == (3, 3, 56, 56)
    with pytest.raises(ValueError):
        load_frame_pixels([])


def test_tokens_per_tile():
    assert num_tokens_per_tile() == 256
    assert num_tokens_per_tile(56) == 4 and num_tokens_per_tile(112) == 16


@pytest.mark.parametrize("num_frames,expected", [(10, [0, 1, 2, 3, 4]), (3, [0, 1, 2]),
                                                 (1, [0])])
def test_key_frames_first(num_frames, expected):
    assert select_key_frames(num_frames, 5, "first") == expected


@pytest.mark.parametrize("num_frames,expected", [
    (10, [1, 3, 5, 7, 9]), (7, [0, 2, 3, 4, 6]), (5, [0, 1, 2, 3, 4]), (2, [0, 1]),
    (100, [10, 30, 50, 70, 90]),
])
def test_key_frames_uniform(num_frames, expected):
    assert select_key_frames(num_frames, 5, "uniform") == expected


@pytest.mark.parametrize("num_frames", [1, 3, 5, 6, 7, 50])
def test_key_frames_random(num_frames):
    picks = select_key_frames(num_frames, 5, "random", np.random.default_rng(0))
    assert len(picks) == 5 and picks == sorted(picks)
    assert all(0 <= i < num_frames for i in picks)
    if num_frames > 6:  # Sa2VA draws distinct frames only when T > K + 1
        assert len(set(picks)) == 5
    assert picks == select_key_frames(num_frames, 5, "random", np.random.default_rng(0))


def test_key_frames_random_threshold_is_sa2vas():
    """Sa2VA03RefVOS.dataset_map_fn: replace=False only when len_frames > select_k + 1, so
    T = 6 frames for K = 5 still draws with replacement (repeats possible), T = 7 never."""
    six = [select_key_frames(6, 5, "random", np.random.default_rng(s)) for s in range(40)]
    seven = [select_key_frames(7, 5, "random", np.random.default_rng(s)) for s in range(40)]
    assert any(len(set(p)) < 5 for p in six)
    assert all(len(set(p)) == 5 for p in seven)


def test_key_frames_bad_input():
    with pytest.raises(ValueError):
        select_key_frames(0)
    with pytest.raises(ValueError):
        select_key_frames(5, 0)
    with pytest.raises(ValueError, match="mode"):
        select_key_frames(5, 5, "middle")
