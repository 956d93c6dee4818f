"""Image and video front-end of the InternVL-2.5 MLLM, as Sa2VA-1B feeds it.

Images: InternVL's dynamic tiling. The image is resized to the grid of 448 px tiles
(cols x rows, 1 <= cols * rows <= max_num) whose aspect ratio is closest to its own, cut
into those tiles (row-major), and, when there is more than one tile, a 448 px thumbnail of
the whole image is appended. Each tile is normalised with the ImageNet mean/std and costs
256 LLM tokens. Sa2VA uses min 1, max 12 tiles, thumbnail on.

Videos: the MLLM sees only a few key frames, each as ONE 448 px tile (no dynamic tiling),
while SAM-2 segments every frame. Sa2VA's training datasets draw 5 random frames per clip
(sorted; without replacement when the clip has more than 6 frames, with replacement
otherwise); its predict_forward gives the MLLM the first 5 frames of what it is passed.
`select_key_frames` provides both, plus an evenly spaced choice.

SAM-2's own 1024 px input (Sa2VA's DirectResize) lives with the grounding model.
"""

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SIZE = 448
NUM_KEY_FRAMES = 5

ImageInput = Image.Image | str | Path


def num_tokens_per_tile(
    image_size: int = IMAGE_SIZE, patch_size: int = 14, downsample_ratio: float = 0.5
) -> int:
    """LLM tokens per tile: (448 / 14)^2 = 1024 ViT patches, pixel shuffle 0.5 -> 256."""
    return int((image_size // patch_size) ** 2 * downsample_ratio**2)


def candidate_grids(min_num: int = 1, max_num: int = 12) -> list[tuple[int, int]]:
    """All (cols, rows) grids with min_num <= cols * rows <= max_num, fewest tiles first.

    Grids with the same tile count are ordered by (cols, rows). InternVL leaves that order
    to a set; it only matters on an exact tie between two different aspect ratios of the
    same count, where a ratio with fewer tiles is always closer, so results agree.
    """
    if not 1 <= min_num <= max_num:
        raise ValueError(f"need 1 <= min_num <= max_num, got {min_num}, {max_num}")
    grids = [
        (c, r) for c in range(1, max_num + 1) for r in range(1, max_num + 1)
        if min_num <= c * r <= max_num
    ]
    return sorted(grids, key=lambda g: (g[0] * g[1], g[0], g[1]))


def find_closest_aspect_ratio(
    aspect_ratio: float,
    target_ratios: Sequence[tuple[int, int]],
    width: int,
    height: int,
    image_size: int = IMAGE_SIZE,
) -> tuple[int, int]:
    """The grid whose cols/rows is closest to width/height (InternVL's rule).

    On a tie in ratio (e.g. 1x1, 2x2, 3x3 for a square image) a later grid, i.e. one with
    more tiles, wins only if the image has more than half the pixels that grid holds, so a
    small image is not blown up into many tiles.

    Args:
        aspect_ratio: width / height of the image.
        target_ratios: (cols, rows) candidates, fewest tiles first (`candidate_grids`).
        width, height: image size in pixels.
        image_size: tile size.

    Returns:
        (cols, rows).
    """
    best, best_diff = (1, 1), float("inf")
    area = width * height
    for cols, rows in target_ratios:
        diff = abs(aspect_ratio - cols / rows)
        if diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and area > 0.5 * image_size * image_size * cols * rows:
            best = (cols, rows)
    return best


def dynamic_preprocess(
    image: Image.Image,
    min_num: int = 1,
    max_num: int = 12,
    image_size: int = IMAGE_SIZE,
    use_thumbnail: bool = True,
) -> list[Image.Image]:
    """Cut an image into InternVL's dynamic tiles.

    Args:
        image: any PIL image (converted to RGB).
        min_num, max_num: bounds on the number of tiles (thumbnail not counted).
        image_size: tile side in pixels.
        use_thumbnail: append a whole-image tile when there is more than one tile.

    Returns:
        cols * rows tiles of image_size x image_size in row-major order, then the
        thumbnail if any.
    """
    image = image.convert("RGB") if image.mode != "RGB" else image
    width, height = image.size
    grid = find_closest_aspect_ratio(
        width / height, candidate_grids(min_num, max_num), width, height, image_size
    )
    cols, rows = grid
    # Bicubic is PIL's default for RGB resize, which InternVL relies on; named explicitly.
    resized = image.resize((cols * image_size, rows * image_size), Image.Resampling.BICUBIC)
    tiles = []
    for i in range(cols * rows):
        x, y = (i % cols) * image_size, (i // cols) * image_size
        tiles.append(resized.crop((x, y, x + image_size, y + image_size)))
    if use_thumbnail and len(tiles) > 1:
        tiles.append(image.resize((image_size, image_size), Image.Resampling.BICUBIC))
    return tiles


def _to_rgb(image: Image.Image) -> Image.Image:
    # A named function rather than a lambda so the transform pickles into workers.
    return image.convert("RGB") if image.mode != "RGB" else image


def build_transform(input_size: int = IMAGE_SIZE) -> Callable[[Image.Image], torch.Tensor]:
    """PIL image -> (3, input_size, input_size) float tensor: RGB, bicubic resize, [0, 1],
    ImageNet mean/std normalisation (InternVL's and Sa2VA's `build_transform`)."""
    return T.Compose([
        T.Lambda(_to_rgb),
        T.Resize((input_size, input_size), interpolation=InterpolationMode.BICUBIC),
        T.ToTensor(),
        T.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
    ])


def open_image(image_or_path: ImageInput) -> Image.Image:
    """An RGB PIL image from a PIL image or a file path.

    Raises:
        FileNotFoundError: the path does not exist (the message names it).
        OSError: the file cannot be decoded as an image (the message names it).
    """
    if isinstance(image_or_path, Image.Image):
        return _to_rgb(image_or_path)
    path = Path(image_or_path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            # convert() decodes the pixels now, so truncated files fail here, with the path.
            return img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise OSError(f"cannot read image {path}: {err}") from err


def load_image_tiles(
    image_or_path: ImageInput,
    max_num: int = 12,
    image_size: int = IMAGE_SIZE,
    min_num: int = 1,
    use_thumbnail: bool = True,
) -> torch.Tensor:
    """An image as the MLLM's pixel_values: dynamic tiles, each transformed.

    Args:
        image_or_path: PIL image or image file.
        max_num, image_size, min_num, use_thumbnail: as in `dynamic_preprocess`.

    Returns:
        (T, 3, image_size, image_size) float32, T = tiles (+ thumbnail); the prompt needs
        T * num_tokens_per_tile(image_size) `<IMG_CONTEXT>` tokens.

    Raises:
        FileNotFoundError, OSError: see `open_image`.
    """
    tiles = dynamic_preprocess(open_image(image_or_path), min_num, max_num, image_size,
                               use_thumbnail)
    transform = build_transform(image_size)
    return torch.stack([transform(tile) for tile in tiles])


def load_frame_pixels(frames: Sequence[ImageInput], image_size: int = IMAGE_SIZE) -> torch.Tensor:
    """Key frames as the MLLM's pixel_values: one tile per frame, no dynamic tiling.

    Args:
        frames: the selected key frames (PIL images or paths), in temporal order.
        image_size: tile size.

    Returns:
        (K, 3, image_size, image_size) float32 for K frames.
    """
    if not frames:
        raise ValueError("need at least one frame")
    transform = build_transform(image_size)
    return torch.stack([transform(open_image(frame)) for frame in frames])


def select_key_frames(
    num_frames: int,
    num_select: int = NUM_KEY_FRAMES,
    mode: str = "first",
    rng: np.random.Generator | None = None,
) -> list[int]:
    """Indices of the frames the MLLM sees.

    Args:
        num_frames: T, frames in the clip.
        num_select: K, Sa2VA uses 5.
        mode:
            "first": the first min(T, K) frames - Sa2VA's inference (predict_forward feeds
                the first 5 frames it receives to the MLLM).
            "random": Sa2VA's training sampling - exactly K sorted indices, distinct when
                T > K + 1, drawn with replacement otherwise (Sa2VA's threshold), so every
                sample has the same number of image tokens.
            "uniform" (ours): min(T, K) distinct, evenly spaced indices - the centre frame
                of each of K equal segments, covering the whole clip deterministically.
        rng: numpy Generator for "random" (a fresh unseeded one when None).

    Returns:
        Sorted frame indices in [0, T).

    Raises:
        ValueError: T < 1, K < 1 or an unknown mode.
    """
    if num_frames < 1 or num_select < 1:
        raise ValueError(f"need num_frames >= 1 and num_select >= 1, got {num_frames}, "
                         f"{num_select}")
    if mode == "first":
        return list(range(min(num_frames, num_select)))
    if mode == "uniform":
        if num_frames <= num_select:
            return list(range(num_frames))
        return [int((i + 0.5) * num_frames / num_select) for i in range(num_select)]
    if mode == "random":
        rng = rng if rng is not None else np.random.default_rng()
        replace = num_frames <= num_select + 1
        picked = rng.choice(num_frames, size=num_select, replace=replace)
        return sorted(int(i) for i in picked)
    raise ValueError(f"unknown key-frame mode {mode!r}: expected 'first', 'random' or 'uniform'")
