"""Synthetic scenes of coloured shapes: sampling, rendering and exact visible-pixel masks.

A scene is a list of :class:`SceneObject` (shape, colour, radius, one integer centre per
frame; an image is a one-frame scene) drawn in list order, so later objects occlude earlier
ones. Rendering has no anti-aliasing (``cv2.LINE_8``): every pixel belongs to exactly one
object or to the background, and the mask of an object is its visible pixels after occlusion.
Sampling rejects placements that leave any object less than `min_visible` of its own
footprint visible, so every object (and so every referred object) stays clearly visible,
and placements where two shapes of one colour touch (their boundary would not show).

All randomness comes from the ``numpy.random.Generator`` passed in, so a seed fixes the scene.
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import cv2
import numpy as np

SHAPES = ("circle", "square", "triangle", "diamond")
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 90, 230),
    "yellow": (235, 215, 40),
    "purple": (160, 60, 210),
}
MOTIONS = ("left", "right", "up", "down", "stops", "static")
# Unit steps (dx, dy) of the four directions; image y grows downwards.
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}

__all__ = [
    "COLOURS",
    "DIRECTIONS",
    "MOTIONS",
    "SHAPES",
    "SceneObject",
    "footprint",
    "render",
    "sample_image_scene",
    "sample_video_scene",
]


@dataclass(frozen=True)
class SceneObject:
    """One shape of a scene.

    Attributes:
        id: Object id, unique in the scene (the COCO ann_id / MeViS anno_id when written).
        shape: One of :data:`SHAPES`.
        colour: Colour name, a key of :data:`COLOURS`.
        size: Radius in pixels (circle radius, half side of the square, half height of the
            triangle and diamond); size comparisons use it.
        track: Integer centre (x, y) per frame; images have one frame.
        motion: Video motion label (one of :data:`MOTIONS`), "" for images.
    """

    id: int
    shape: str
    colour: str
    size: int
    track: tuple[tuple[int, int], ...]
    motion: str = ""

    @property
    def rgb(self) -> tuple[int, int, int]:
        """The colour as an RGB triple."""
        return COLOURS[self.colour]

    @property
    def centre(self) -> tuple[int, int]:
        """Centre (x, y) on the first frame."""
        return self.track[0]

    def to_json(self) -> dict:
        """JSON-ready description (the scenes.json entry); lists instead of tuples."""
        out = asdict(self)
        out["track"] = [list(p) for p in self.track]
        out["rgb"] = list(self.rgb)
        return out


def footprint(shape: str, centre: tuple[int, int], size: int, hw: tuple[int, int]) -> np.ndarray:
    """Pixels covered by one shape, ignoring occlusion.

    Args:
        shape: One of :data:`SHAPES`.
        centre: Integer (x, y).
        size: Radius in pixels.
        hw: (H, W) of the canvas.

    Returns:
        (H, W) bool array.
    """
    canvas = np.zeros(hw, dtype=np.uint8)
    x, y, r = int(centre[0]), int(centre[1]), int(size)
    if shape == "circle":
        cv2.circle(canvas, (x, y), r, 1, thickness=-1, lineType=cv2.LINE_8)
        return canvas.astype(bool)
    if shape == "square":
        pts = [(x - r, y - r), (x + r, y - r), (x + r, y + r), (x - r, y + r)]
    elif shape == "triangle":
        # Apex up; the base sits a little below the centre so the area is comparable.
        base = y + (4 * r) // 5
        pts = [(x, y - r), (x + r, base), (x - r, base)]
    elif shape == "diamond":
        pts = [(x, y - r), (x + r, y), (x, y + r), (x - r, y)]
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
    cv2.fillPoly(canvas, [np.array(pts, dtype=np.int32)], 1, lineType=cv2.LINE_8)
    return canvas.astype(bool)


def render(
    objects: Sequence[SceneObject], hw: tuple[int, int], background: tuple[int, int, int],
    frame: int = 0,
) -> tuple[np.ndarray, dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Draw one frame of a scene in list order (later objects on top).

    Returns:
        image: (H, W, 3) uint8 RGB.
        visible: {object id: (H, W) bool mask of its visible pixels}.
        full: {object id: (H, W) bool footprint without occlusion}.
    """
    image = np.empty((*hw, 3), dtype=np.uint8)
    image[:] = background
    owner = np.full(hw, -1, dtype=np.int64)
    full = {}
    for k, obj in enumerate(objects):
        full[obj.id] = footprint(obj.shape, obj.track[frame], obj.size, hw)
        owner[full[obj.id]] = k
        image[full[obj.id]] = obj.rgb
    visible = {obj.id: owner == k for k, obj in enumerate(objects)}
    return image, visible, full


def _visible_enough(objects: Sequence[SceneObject], hw: tuple[int, int], n_frames: int,
                    min_visible: float) -> bool:
    kernel = np.ones((3, 3), np.uint8)
    for t in range(n_frames):
        _, visible, full = render(objects, hw, (0, 0, 0), t)
        if any(visible[i].sum() < min_visible * full[i].sum() for i in full):
            return False
        # Same-colour shapes must not touch: their common edge would be invisible.
        new = objects[-1]
        grown = cv2.dilate(full[new.id].astype(np.uint8), kernel).astype(bool)
        if any((grown & full[o.id]).any() for o in objects[:-1] if o.colour == new.colour):
            return False
    return True


def _palette(rng: np.random.Generator, n_shapes: int, n_colours: int) -> tuple[list, list]:
    """A few shapes and colours per scene, so that same-shape / same-colour distractors occur."""
    shapes = [SHAPES[i] for i in sorted(rng.choice(len(SHAPES), n_shapes, replace=False))]
    names = list(COLOURS)
    colours = [names[i] for i in sorted(rng.choice(len(names), n_colours, replace=False))]
    return shapes, colours


def _radius_range(image_size: int) -> tuple[int, int]:
    # At 64 px: radii 5..10, so the smallest triangle still covers ~40 pixels and six
    # objects fit without heavy overlap.
    return max(3, round(image_size * 0.08)), max(4, round(image_size * 0.16))


def sample_image_scene(
    rng: np.random.Generator, image_size: int, n_objects: tuple[int, int] = (3, 6),
    min_visible: float = 0.7, max_tries: int = 60, first_id: int = 0,
    n_colours: int | None = None,
) -> list[SceneObject]:
    """Sample a still scene: 2-3 shapes x 2-3 colours, objects placed one by one.

    Args:
        rng: Source of randomness.
        image_size: Side of the square image in pixels.
        n_objects: Inclusive (min, max) number of objects; a placement that fails
            `max_tries` times ends the scene early (never below 2 objects).
        min_visible: Minimum visible fraction of every object's footprint.
        max_tries: Placement attempts per object.
        first_id: Id of the first object; ids are consecutive.
        n_colours: Colours of the scene's palette; None = 2-3 at random (the benchmark's
            scenes). 1 gives scenes in which only shape tells objects apart (the probe of
            scripts/probe_prompt_grounding.py --mono-fraction).

    Returns:
        The objects in drawing order.
    """
    n = int(rng.integers(n_objects[0], n_objects[1] + 1))
    n_shapes, drawn_colours = int(rng.integers(2, 4)), int(rng.integers(2, 4))
    shapes, colours = _palette(rng, n_shapes, drawn_colours if n_colours is None
                               else int(n_colours))
    r_lo, r_hi = _radius_range(image_size)
    hw = (image_size, image_size)
    objects: list[SceneObject] = []
    while len(objects) < n:
        placed = False
        for _ in range(max_tries):
            r = int(rng.integers(r_lo, r_hi + 1))
            x, y = (int(v) for v in rng.integers(r + 1, image_size - r - 1, size=2))
            obj = SceneObject(first_id + len(objects), str(rng.choice(shapes)),
                              str(rng.choice(colours)), r, ((x, y),))
            if _visible_enough([*objects, obj], hw, 1, min_visible):
                objects.append(obj)
                placed = True
                break
        if not placed:
            if len(objects) >= 2:
                break
            objects = []  # restart a scene that cannot even hold two objects
    return objects


def _track(start: tuple[int, int], motion: str, direction: str, speed: int, stop: int,
           n_frames: int) -> tuple[tuple[int, int], ...]:
    dx, dy = DIRECTIONS[direction]
    moving = {"static": 0, "stops": stop}.get(motion, n_frames - 1)
    return tuple((start[0] + dx * speed * min(t, moving), start[1] + dy * speed * min(t, moving))
                 for t in range(n_frames))


def sample_video_scene(
    rng: np.random.Generator, image_size: int, n_frames: int,
    n_objects: tuple[int, int] = (2, 4), min_visible: float = 0.5, max_tries: int = 200,
    first_id: int = 0,
) -> list[SceneObject]:
    """Sample a video scene: shapes moving at constant integer speed, stopping, or still.

    Motions: "left"/"right"/"up"/"down" move every frame; "stops" moves in one of those
    directions until a frame between n_frames/3 and 2*n_frames/3 and then stays; "static"
    never moves. Every object stays inside the frame and at least `min_visible` visible on
    every frame.

    Returns:
        The objects in drawing order, each with `n_frames` centres.
    """
    if n_frames < 3:
        raise ValueError(f"videos need at least 3 frames to show motion, got {n_frames}")
    n = int(rng.integers(n_objects[0], n_objects[1] + 1))
    shapes, colours = _palette(rng, 2, 2)
    r_lo, r_hi = _radius_range(image_size)
    # About a third of the frame over the clip, at least 1 px per frame.
    speed_hi = max(1, image_size // (3 * (n_frames - 1)))
    hw = (image_size, image_size)
    objects: list[SceneObject] = []
    for _ in range(max_tries):
        if len(objects) == n:
            break
        motion = str(rng.choice(MOTIONS))
        direction = motion if motion in DIRECTIONS else str(rng.choice(list(DIRECTIONS)))
        speed = int(rng.integers(max(1, speed_hi // 2), speed_hi + 1))
        # A stopping object moves for 1..n_frames-2 steps, so it is seen both moving and still.
        stop_hi = min(n_frames - 2, max(1, 2 * n_frames // 3))
        stop = int(rng.integers(min(stop_hi, max(1, n_frames // 3)), stop_hi + 1))
        r = int(rng.integers(r_lo, r_hi + 1))
        start = tuple(int(v) for v in rng.integers(r + 1, image_size - r - 1, size=2))
        track = _track(start, motion, direction, speed, stop, n_frames)
        if not all(r + 1 <= c <= image_size - r - 2 for p in track for c in p):
            continue
        obj = SceneObject(first_id + len(objects), str(rng.choice(shapes)),
                          str(rng.choice(colours)), r, track, motion)
        if _visible_enough([*objects, obj], hw, n_frames, min_visible):
            objects.append(obj)
    return objects
