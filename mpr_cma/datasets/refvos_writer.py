"""Write a split in the referring-video layout (tests, the synthetic benchmark).

The layout and its reader are in `refvos_format` (which re-exports `write_refvos_split`).
"""

import json
import logging
import pickle
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from mpr_cma.datasets.layouts import IMAGE_DIR, META_FILE
from mpr_cma.datasets.rle import encode_mask

logger = logging.getLogger(__name__)

__all__ = ["write_refvos_split"]


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
