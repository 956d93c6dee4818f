"""Read and write the referring-video layout shared by MeViS, Ref-DAVIS17, Ref-YTVOS and ReVOS.

The layout (the one Sa2VA uses; see FORMATS.md)::

    <root>/JPEGImages/<video>/<frame>.jpg
    <root>/meta_expressions.json   {"videos": {video: {"frames": [...], "expressions":
                                    {exp_id: {"exp": str, "obj_id": [...], "anno_id": [...]}}}}}
    <root>/mask_dict.json (or .pkl) {str(anno_id): [RLE or null, one per frame]}

RLE is pycocotools' {"size": [h, w], "counts": str}; null means the object is absent from
that frame. The mask of an expression on a frame is the union of its anno_ids' masks.

anno_id assignment: Ref-YTVOS / Ref-DAVIS style files may lack "anno_id". Such expressions
get integer ids, as strings, counting up from (largest integer anno_id present in the file) + 1,
or from 0 if there is none, in this order: videos sorted by name, then each video's expression
ids sorted naturally (numerically when they are all digits, else as strings). The same file
therefore always gets the same ids, and assigned ids never collide with existing ones.

Decoding is lazy: mask_dict is read on first use and decoded masks are kept in a small LRU
cache. Every error names the file and the key at fault.
"""

import json
import logging
import pickle
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mpr_cma.datasets.rle import decode_rle, encode_mask

logger = logging.getLogger(__name__)

META_FILE = "meta_expressions.json"
MASK_FILES = ("mask_dict.json", "mask_dict.pkl")
IMAGE_DIR = "JPEGImages"

__all__ = [
    "Expression",
    "RefVOSSplit",
    "natural_sorted",
    "write_refvos_split",
]


def natural_sorted(keys: Sequence[str]) -> list[str]:
    """Sort ids numerically when they are all digit strings, else as strings."""
    keys = [str(k) for k in keys]
    if keys and all(k.isdigit() for k in keys):
        return sorted(keys, key=lambda k: (int(k), k))
    return sorted(keys)


@dataclass(frozen=True)
class Expression:
    """One referring expression of a video.

    Attributes:
        video: Video name.
        exp_id: Expression id (a string key of meta_expressions.json).
        exp: The sentence.
        obj_ids: Object ids, as in the file (may be empty).
        anno_ids: mask_dict keys whose union is the expression's mask (strings).
    """

    video: str
    exp_id: str
    exp: str
    obj_ids: tuple
    anno_ids: tuple[str, ...]


class RefVOSSplit:
    """One split in the referring-video layout: expressions, frames and ground-truth masks.

    Args:
        root: Split directory (holds JPEGImages/, and by default the two files below).
        meta_file: meta_expressions.json; default `root`/meta_expressions.json.
        mask_file: mask_dict.json or .pkl; default the first of those found in `root`, or
            none (a split without ground truth, e.g. MeViS valid).
        cache_size: Number of decoded (anno_id, frame) masks kept in memory.

    Raises:
        FileNotFoundError: If the meta file (or a given mask file) does not exist.
        ValueError: If the meta file does not have the documented structure.
    """

    def __init__(
        self,
        root: str | Path,
        meta_file: str | Path | None = None,
        mask_file: str | Path | None = None,
        cache_size: int = 512,
    ) -> None:
        self.root = Path(root)
        self.meta_file = Path(meta_file) if meta_file else self.root / META_FILE
        if not self.meta_file.is_file():
            raise FileNotFoundError(f"meta expressions file not found: {self.meta_file}")
        if mask_file is not None:
            self.mask_file: Path | None = Path(mask_file)
            if not self.mask_file.is_file():
                raise FileNotFoundError(f"mask file not found: {self.mask_file}")
        else:
            found = [self.root / name for name in MASK_FILES if (self.root / name).is_file()]
            self.mask_file = found[0] if found else None
        self.videos = self._read_meta()
        self._mask_dict: dict | None = None
        self._cache: OrderedDict[tuple[str, int], np.ndarray | None] = OrderedDict()
        self._cache_size = cache_size
        self._sizes: dict[str, tuple[int, int]] = {}

    # ------------------------------------------------------------------ meta
    def _read_meta(self) -> dict[str, dict]:
        try:
            videos = json.loads(self.meta_file.read_text())["videos"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{self.meta_file}: expected {{'videos': {{...}}}} ({err})") from err
        if not isinstance(videos, dict):
            raise ValueError(f"{self.meta_file}: 'videos' must be a dict")
        existing = [
            int(a)
            for v in videos.values()
            for e in v.get("expressions", {}).values()
            for a in e.get("anno_id", [])
            if str(a).lstrip("-").isdigit()
        ]
        next_id = max(existing, default=-1) + 1
        parsed: dict[str, dict] = {}
        for video in sorted(videos):
            info = videos[video]
            if "frames" not in info or "expressions" not in info:
                raise ValueError(
                    f"{self.meta_file}: video {video!r} lacks 'frames' or 'expressions'"
                )
            expressions = {}
            for exp_id in natural_sorted(list(info["expressions"])):
                entry = info["expressions"][exp_id]
                if "anno_id" in entry:
                    anno_ids = tuple(str(a) for a in entry["anno_id"])
                else:
                    anno_ids = (str(next_id),)
                    next_id += 1
                obj_ids = entry.get("obj_id", [])
                obj_ids = tuple(obj_ids) if isinstance(obj_ids, list) else (obj_ids,)
                expressions[exp_id] = Expression(
                    video, exp_id, str(entry.get("exp", "")), obj_ids, anno_ids
                )
            parsed[video] = {"frames": [str(f) for f in info["frames"]], "expressions": expressions}
        return parsed

    @property
    def has_masks(self) -> bool:
        """Whether the split has ground truth (a mask_dict file)."""
        return self.mask_file is not None

    def frames(self, video: str) -> list[str]:
        """Frame names of `video`, in the file's order."""
        return self.videos[video]["frames"]

    def expressions(self, video: str) -> dict[str, Expression]:
        """{exp_id: Expression} of `video`."""
        return self.videos[video]["expressions"]

    def iter_expressions(self) -> Iterator[Expression]:
        """All expressions: videos by name, expression ids in natural order."""
        for video in self.videos:
            yield from self.expressions(video).values()

    def __len__(self) -> int:
        return sum(len(v["expressions"]) for v in self.videos.values())

    def frame_path(self, video: str, frame: str) -> Path:
        """Path of one JPEG frame."""
        return self.root / IMAGE_DIR / video / f"{frame}.jpg"

    def frame_size(self, video: str) -> tuple[int, int] | None:
        """(H, W) of the video: its first JPEG frame, else its first non-null RLE, else None."""
        if video not in self._sizes:
            path = self.frame_path(video, self.frames(video)[0])
            if path.is_file():
                with Image.open(path) as img:  # reads the header only
                    self._sizes[video] = (img.height, img.width)
            else:
                size = self._first_rle_size(video)
                if size is None:
                    return None
                self._sizes[video] = size
        return self._sizes[video]

    def _first_rle_size(self, video: str) -> tuple[int, int] | None:
        if not self.has_masks:
            return None
        for expression in self.expressions(video).values():
            for anno_id in expression.anno_ids:
                for rle in self.mask_dict.get(anno_id) or []:
                    if rle:
                        return int(rle["size"][0]), int(rle["size"][1])
        return None

    # ----------------------------------------------------------------- masks
    @property
    def mask_dict(self) -> dict:
        """The raw {str(anno_id): [RLE or None per frame]}, read on first use."""
        if self._mask_dict is None:
            if self.mask_file is None:
                raise ValueError(f"split {self.root} has no mask_dict (no ground truth)")
            if self.mask_file.suffix == ".pkl":
                # The dataset's own format (Sa2VA ships Ref-DAVIS17 as a pickle); only load
                # files from a trusted dataset directory.
                with open(self.mask_file, "rb") as f:
                    data = pickle.load(f)
            else:
                data = json.loads(self.mask_file.read_text())
            if not isinstance(data, dict):
                raise ValueError(f"{self.mask_file}: expected a dict of anno_id -> RLE list")
            self._mask_dict = {str(k): v for k, v in data.items()}
        return self._mask_dict

    def anno_mask(self, video: str, anno_id: str, index: int) -> np.ndarray | None:
        """Decoded mask of one anno_id on frame number `index` of `video` (None = absent).

        Raises:
            KeyError: If `anno_id` is not in mask_dict (the message names the file).
            ValueError: If the RLE does not decode or its size differs from the frame's.
        """
        key = (str(anno_id), index)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        where = f"{self.mask_file}: anno_id {anno_id!r}"
        if key[0] not in self.mask_dict:
            raise KeyError(f"{where} not found (video {video!r})")
        per_frame = self.mask_dict[key[0]]
        if not isinstance(per_frame, list) or index >= len(per_frame):
            n = len(per_frame) if isinstance(per_frame, list) else "no list of"
            raise ValueError(f"{where}: has {n} frames, video {video!r} needs frame {index}")
        rle = per_frame[index]
        mask = None if rle is None else decode_rle(rle, f"{where} frame {index}")
        size = self.frame_size(video)
        if mask is not None and size is not None and mask.shape != size:
            raise ValueError(
                f"{where} frame {index}: RLE size {mask.shape} differs from the frame size "
                f"{size} of video {video!r}"
            )
        self._cache[key] = mask
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return mask

    def expression_masks(self, video: str, exp_id: str) -> np.ndarray:
        """Ground truth of an expression: union of its anno_ids' masks on every frame.

        Returns:
            bool array (T, H, W), T = len(frames(video)).

        Raises:
            KeyError: If the expression or one of its anno_ids is unknown.
            ValueError: If a mask does not decode, or the frame size cannot be found.
        """
        expression = self.expressions(video)[exp_id]
        size = self.frame_size(video)
        if size is None:
            raise ValueError(
                f"cannot tell the frame size of video {video!r}: no JPEG under "
                f"{self.root / IMAGE_DIR} and no non-empty mask in {self.mask_file}"
            )
        frames = self.frames(video)
        out = np.zeros((len(frames), *size), dtype=bool)
        for t in range(len(frames)):
            for anno_id in expression.anno_ids:
                mask = self.anno_mask(video, anno_id, t)
                if mask is not None:
                    out[t] |= mask
        return out


def write_refvos_split(
    root: str | Path,
    videos: Mapping[str, Mapping],
    *,
    with_masks: bool = True,
    mask_format: str = "json",
    write_anno_ids: bool = True,
) -> Path:
    """Write a split in the referring-video layout (used by tests and the synthetic data).

    Args:
        root: Split directory to create.
        videos: {video: spec}, spec keys:
            "frames": frame names (default "00000", "00001", ...);
            "masks": {anno_id: (T, H, W) array (bool or numeric) or a list of T (H, W)
                arrays / None (None = absent, written as null)};
            "expressions": {exp_id: {"exp": str, "anno_id": [...], "obj_id": [...]}}
                ("obj_id" defaults to the anno_ids as ints when they are digits);
            "images": optional (T, H, W, 3) uint8 frames; else mid-grey frames of "size"
                or of the masks' size;
            "size": optional (H, W) when there are no masks.
        with_masks: Write mask_dict (False for a split scored by a server).
        mask_format: "json" or "pkl".
        write_anno_ids: Write the expressions' "anno_id" (False mimics Ref-YTVOS files).

    Returns:
        `root` as a Path.

    Raises:
        ValueError: On inconsistent frame counts or sizes, or an anno_id written twice.
    """
    root = Path(root)
    meta: dict = {"videos": {}}
    mask_dict: dict[str, list] = {}
    for video, spec in videos.items():
        masks = spec.get("masks", {})
        n = len(spec["frames"]) if "frames" in spec else len(next(iter(masks.values())))
        frames = list(spec.get("frames", [f"{t:05d}" for t in range(n)]))
        size = tuple(spec["size"]) if "size" in spec else None
        for anno_id, per_frame in masks.items():
            if len(per_frame) != len(frames):
                raise ValueError(
                    f"video {video!r} anno {anno_id!r}: {len(per_frame)} masks, "
                    f"{len(frames)} frames"
                )
            if str(anno_id) in mask_dict:
                raise ValueError(f"anno_id {anno_id!r} written twice")
            mask_dict[str(anno_id)] = [None if m is None else encode_mask(m) for m in per_frame]
            for m in per_frame:
                if m is not None:
                    shape = tuple(np.shape(m))
                    if size is not None and shape != size:
                        raise ValueError(f"video {video!r}: mask size {shape} != {size}")
                    size = shape
        images = spec.get("images")
        if images is None and size is None:
            raise ValueError(f"video {video!r}: give 'images', 'size' or non-empty masks")
        if images is None:
            images = np.full((len(frames), *size, 3), 128, dtype=np.uint8)
        image_dir = root / IMAGE_DIR / video
        image_dir.mkdir(parents=True, exist_ok=True)
        for frame, image in zip(frames, images, strict=True):
            Image.fromarray(np.asarray(image, dtype=np.uint8)).save(image_dir / f"{frame}.jpg")
        expressions = {}
        for exp_id, entry in spec.get("expressions", {}).items():
            anno_ids = list(entry.get("anno_id", []))
            default_obj = [int(a) if str(a).isdigit() else a for a in anno_ids]
            out = {"exp": entry.get("exp", ""), "obj_id": list(entry.get("obj_id", default_obj))}
            if write_anno_ids:
                out["anno_id"] = anno_ids
            expressions[str(exp_id)] = out
        meta["videos"][video] = {"frames": frames, "expressions": expressions}
    root.mkdir(parents=True, exist_ok=True)
    (root / META_FILE).write_text(json.dumps(meta))
    if with_masks:
        if mask_format == "json":
            (root / "mask_dict.json").write_text(json.dumps(mask_dict))
        elif mask_format == "pkl":
            with open(root / "mask_dict.pkl", "wb") as f:
                pickle.dump(mask_dict, f)
        else:
            raise ValueError(f"mask_format must be 'json' or 'pkl', got {mask_format!r}")
    logger.debug("wrote referring-video split with %d videos to %s", len(videos), root)
    return root
