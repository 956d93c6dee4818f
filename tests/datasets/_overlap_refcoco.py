"""A RefCOCO root whose annotations are made of several (overlapping) rectangle polygons.

A rectangle polygon [x0,y0, x1,y0, x1,y1, x0,y1] covers rows y0..y1-1, columns x0..x1-1 in
pycocotools' rasterisation, so every mask here is drawn by hand (`rectangle`), and
`sa2va_by_hand` re-implements Sa2VA's ground truth independently of pycocotools: sum the
polygon masks as uint8, then read the column-major pixels as pycocotools' RLE does (a new
run at every change of value) and decode alternating 0/1 runs (a pixel is 1 when an odd
number of value changes lead up to it).

Refs on one 12 x 16 val image, hand-derived under Sa2VA's rule (perfect = union mask):

=====  ==========================================  =====  ======  =====  ========
ref    polygons                                    union  Sa2VA   I      IoU
=====  ==========================================  =====  ======  =====  ========
0      rows 2-5 x cols 2-5, rows 4-7 x cols 4-7    28     24      24     24/28
1      rows 2-5 x cols 2-5, rows 4-5 x cols 4-7    20     24      16     16/28
2      rows 2-5 x cols 10-13                       16     16      16     1
3      rows 8-9 x cols 0-3, rows 8-9 x cols 8-11   16     16      16     1
=====  ==========================================  =====  ======  =====  ========

(ref 0 loses its 4 overlap pixels; in ref 1 both polygons end on row 5 in columns 4-5, so
after the overlap run the background run of column 4 reads as 1, the next column's
single-coverage run as 0: 8 background pixels gained, 2 + 2 lost.) A perfect prediction:
cIoU = (24 + 16 + 16 + 16) / (28 + 28 + 16 + 16) = 72/88 = 9/11, gIoU = (6/7 + 4/7 + 2)/4
= 6/7.
"""

from pathlib import Path

import numpy as np
from PIL import Image

from mpr_cma.datasets.refcoco_format import write_refcoco

H, W = 12, 16
IMAGE = {"id": 7, "file_name": "COCO_train2014_000000000007.jpg", "height": H, "width": W}
# ref/ann id -> rectangles (row0, row1, col0, col1), inclusive
RECTANGLES = {
    0: [(2, 5, 2, 5), (4, 7, 4, 7)],
    1: [(2, 5, 2, 5), (4, 5, 4, 7)],
    2: [(2, 5, 10, 13)],
    3: [(8, 9, 0, 3), (8, 9, 8, 11)],
}
EXPECTED = {"cIoU": 9 / 11, "gIoU": 6 / 7, "changed": 2, "multi_polygon": 3}


def polygon(rect: tuple[int, int, int, int]) -> list[int]:
    r0, r1, c0, c1 = rect
    return [c0, r0, c1 + 1, r0, c1 + 1, r1 + 1, c0, r1 + 1]


def rectangle(rect: tuple[int, int, int, int]) -> np.ndarray:
    r0, r1, c0, c1 = rect
    mask = np.zeros((H, W), bool)
    mask[r0:r1 + 1, c0:c1 + 1] = True
    return mask


def union_by_hand(ref: int) -> np.ndarray:
    return np.logical_or.reduce([rectangle(r) for r in RECTANGLES[ref]])


def sa2va_by_hand(masks: list[np.ndarray]) -> np.ndarray:
    """Sa2VA's ground truth of several polygon masks, without pycocotools."""
    count = np.sum([m.astype(np.uint8) for m in masks], axis=0).astype(np.uint8)
    flat = count.flatten(order="F")
    changes = np.cumsum(flat != np.concatenate([[0], flat[:-1]]))
    return (changes % 2 == 1).reshape(count.shape, order="F")


def write_overlap_root(root: str | Path) -> Path:
    """Write DATA_ROOT/refcoco (instances.json, refs(unc).p) and the image; returns root."""
    root = Path(root)
    images = root / "coco2014" / "train2014"
    images.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((H, W, 3), 128, np.uint8)).save(images / IMAGE["file_name"])
    annotations = [{"id": ref, "image_id": IMAGE["id"], "category_id": 1,
                    "segmentation": [polygon(r) for r in rects]}
                   for ref, rects in RECTANGLES.items()]
    refs = [{"ref_id": ref, "ann_id": ref, "split": "val", "sentences": [f"object {ref}"]}
            for ref in RECTANGLES]
    write_refcoco(root, "refcoco", [IMAGE], annotations, refs)
    return root
