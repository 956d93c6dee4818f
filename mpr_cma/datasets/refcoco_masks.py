"""Ground truth of a RefCOCO annotation: its COCO segmentation rasterised at the image size.

Two rules for an annotation made of several polygons (`GT_RULES`):

- "union" (default): the true mask, every pixel inside any of the polygons, the way REFER
  and pycocotools ``annToMask`` do it (``frPyObjects`` -> ``merge`` -> ``decode``).
- "sa2va": what Sa2VA's RefCOCO evaluation scores against (projects/sa2va/evaluation/
  dataset/RES.py ``decode_mask``: one mask per polygon, ``np.sum`` over them, cast to
  uint8; sa2va_eval_refcoco.py ``mask_to_rle`` then encodes that count map with
  pycocotools ``encode`` and RES.py ``rle_to_mask`` decodes it). pycocotools' RLE starts
  a new run at every change of value and decoding alternates 0/1 runs, so a pixel covered
  by two polygons comes back as 0 when it follows a pixel covered by one (the overlap is
  lost), and background right after such a pixel comes back as 1 (until the next change,
  in column-major order). A single-polygon annotation is the same under both rules.

RLE segmentations (crowd annotations) are decoded as they are under both rules. Polygons
of fewer than 3 points enclose no pixel and are dropped under both (pycocotools would read
a leading 4-number polygon as a box).
"""

import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from mpr_cma.datasets.rle import rle_run_lengths

GT_RULES = ("union", "sa2va")

__all__ = ["GT_RULES", "segmentation_to_mask", "validate_segmentation"]


def validate_segmentation(segmentation: Any, height: int, width: int) -> None:
    """Check a COCO segmentation can be rasterised at height x width, without decoding it.

    Polygons: a non-empty list of flat [x0, y0, x1, y1, ...] lists of numbers, each of even
    length (polygons of fewer than 3 points are allowed: they enclose no pixel).
    RLE: {"size": [height, width], "counts": run-length list or compressed string}, run
    lengths non-negative and summing to height * width.

    Raises:
        ValueError: Describing the first problem found.
    """
    if isinstance(segmentation, list):
        if not segmentation:
            raise ValueError("empty polygon list")
        for i, poly in enumerate(segmentation):
            if not isinstance(poly, list) or not all(
                isinstance(v, numbers.Real) and not isinstance(v, bool) for v in poly
            ):
                raise ValueError(f"polygon #{i} is not a flat list of numbers")
            if len(poly) % 2:
                raise ValueError(f"polygon #{i} has an odd number of coordinates ({len(poly)})")
        return
    if not isinstance(segmentation, Mapping) or not {"size", "counts"} <= set(segmentation):
        raise ValueError(f"segmentation is neither a polygon list nor an RLE: {segmentation!r:.80}")
    size = list(segmentation["size"])
    if size != [height, width]:
        raise ValueError(f"RLE size {size} does not match the image size [{height}, {width}]")
    counts = segmentation["counts"]
    if isinstance(counts, str | bytes):
        runs = rle_run_lengths(counts)
    elif isinstance(counts, list) and all(isinstance(c, numbers.Integral) for c in counts):
        runs = counts
    else:
        raise ValueError("RLE counts must be a string or a list of integers")
    if any(r < 0 for r in runs):
        raise ValueError("RLE has a negative run length")
    if sum(runs) != height * width:
        raise ValueError(f"RLE runs cover {sum(runs)} pixels, the image has {height * width}")


def segmentation_to_mask(segmentation: Any, height: int, width: int,
                         gt_rule: str = "union") -> np.ndarray:
    """Rasterise a COCO segmentation (polygons or RLE) at height x width.

    Args:
        segmentation: Polygon list [[x0, y0, ...], ...], uncompressed RLE
            {"size", "counts": [runs]} or compressed RLE {"size", "counts": str}.
        height: Image height.
        width: Image width.
        gt_rule: "union" (the true mask) or "sa2va" (Sa2VA's evaluation ground truth of
            several polygons), see the module docstring.

    Returns:
        (height, width) bool mask.

    Raises:
        ValueError: If the segmentation is malformed (see :func:`validate_segmentation`)
            or `gt_rule` is unknown.
    """
    if gt_rule not in GT_RULES:
        raise ValueError(f"gt_rule must be one of {GT_RULES}, got {gt_rule!r}")
    validate_segmentation(segmentation, height, width)
    if isinstance(segmentation, list):
        polygons = [poly for poly in segmentation if len(poly) >= 6]
        if not polygons:
            return np.zeros((height, width), dtype=bool)
        rles = mask_utils.frPyObjects(polygons, height, width)
        if gt_rule == "sa2va":
            return _sa2va_count_map_roundtrip(rles)
        rle = mask_utils.merge(rles)
    elif isinstance(segmentation["counts"], list):
        rle = mask_utils.frPyObjects(
            {"size": [height, width], "counts": [int(c) for c in segmentation["counts"]]},
            height, width,
        )
    else:
        counts = segmentation["counts"]
        counts = counts.encode("ascii") if isinstance(counts, str) else counts
        rle = {"size": [height, width], "counts": counts}
    return mask_utils.decode(rle).astype(bool)


def _sa2va_count_map_roundtrip(rles: list[dict]) -> np.ndarray:
    """Sa2VA's steps on per-polygon RLEs: decode, sum as uint8, pycocotools encode, decode."""
    count = np.sum(mask_utils.decode(rles), axis=2).astype(np.uint8)  # RES.py decode_mask
    rle = mask_utils.encode(np.asfortranarray(count))  # sa2va_eval_refcoco.py mask_to_rle
    return mask_utils.decode(rle).astype(bool)  # RES.py rle_to_mask
