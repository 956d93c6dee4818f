"""Exact, fast DAVIS 2017 region similarity (J) and boundary F-measure (F).

The definitions are those of the public davisvideochallenge/davis2017-evaluation code
(`davis2017/metrics.py`: `db_eval_iou`, `db_eval_boundary`, `f_measure`, `_seg2bmap`),
which MeViS, Ref-DAVIS17, Ref-YTVOS and ReVOS all score with. The results are bit-identical
to that code (tests check this on real DAVIS masks); only the computation differs:

* each frame is cropped to the bounding box of ``gt | pred`` plus the one-pixel margin the
  boundary map needs, so the work scales with the object, not the frame;
* boundary maps are built from whole-array XORs, with no per-pixel work;
* the dilated boundary (official: ``cv2.dilate`` by skimage ``disk(r)``) is only ever read
  at the other mask's boundary pixels, so it is not built: each of those pixels is tested
  with window sums on an integral image, the disk split into a few rectangles (6 for r = 8).
  Only for dense boundaries (noisy masks) is the map dilated, by those rectangles;
* nothing is matched where the official special cases decide F alone (an empty boundary).

Masks may be bool or any numeric dtype; like the official code, non-zero means foreground.
Void pixels (an optional argument of the official code, unused by the referring benchmarks)
are not supported.
"""

import math
import numbers
from functools import lru_cache

import cv2
import numpy as np

DEFAULT_BOUND_TH = 0.008
# Above this many boundary pixels per pixel of the crop, dilating the whole map (cost per
# pixel) beats window lookups at the boundary pixels (cost per boundary pixel, about 30x).
_DENSE_BOUNDARY = 1 / 32

__all__ = [
    "DEFAULT_BOUND_TH",
    "boundary_f_measure",
    "boundary_map",
    "boundary_radius",
    "disk_kernel",
    "region_and_boundary",
    "region_similarity",
]


def _as_masks(name: str, mask: np.ndarray) -> np.ndarray:
    """Return `mask` as a bool (T, H, W) or (H, W) array.

    Raises:
        ValueError: If `mask` is not 2-D or 3-D, or its frames have no pixels.
    """
    arr = np.asarray(mask)
    if arr.ndim not in (2, 3):
        raise ValueError(f"{name} must be a (T, H, W) or (H, W) mask array, got shape {arr.shape}")
    if arr.shape[-1] == 0 or arr.shape[-2] == 0:
        raise ValueError(f"{name} frames must have H, W >= 1, got shape {arr.shape}")
    return arr if arr.dtype == np.bool_ else arr != 0


def _mask_pair(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (gt, pred) pair and return both as bool (T, H, W) arrays."""
    gt, pred = _as_masks("gt", gt), _as_masks("pred", pred)
    if gt.shape != pred.shape:
        raise ValueError(
            f"gt and pred must have the same shape, got gt {gt.shape} and pred {pred.shape}"
        )
    return (gt, pred) if gt.ndim == 3 else (gt[None], pred[None])


def region_similarity(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-frame region similarity J (Jaccard index), as DAVIS 2017 `db_eval_iou`.

    J = |gt & pred| / |gt | pred|, and J = 1 on a frame where both masks are empty.

    Args:
        gt: Ground-truth masks, (T, H, W) or (H, W); bool or numeric (non-zero = foreground).
        pred: Predicted masks, same shape as `gt`.

    Returns:
        float64 array of shape (T,); always 1-D, an (H, W) input gives shape (1,).

    Raises:
        ValueError: If the shapes differ or are not (T, H, W) / (H, W).
    """
    gt, pred = _mask_pair(gt, pred)
    counts = np.empty((len(gt), 3), dtype=np.int64)
    buf = np.empty(gt.shape[1:], dtype=bool)
    # One frame at a time, so each frame is read from cache by the three counts.
    for t, (g, p) in enumerate(zip(gt, pred, strict=True)):
        counts[t] = (
            np.count_nonzero(g),
            np.count_nonzero(p),
            np.count_nonzero(np.logical_and(g, p, out=buf)),
        )
    return _jaccard(*counts.T)


def _boundary_into(seg: np.ndarray, out: np.ndarray) -> None:
    """Write the boundary map of bool `seg` (..., H, W) into all-False bool `out`, same shape.

    A pixel is on the boundary when its 2x2 block (y..y+1, x..x+1) is not constant, i.e.
    when there is a horizontal difference in row y or y+1 or a vertical one in column x.
    On the last row only the right neighbour counts, on the last column only the one below,
    and the bottom-right pixel stays False: the official edge rules.
    """
    horiz = seg[..., :, :-1] ^ seg[..., :, 1:]  # (..., H, W-1): differs from right neighbour
    vert = seg[..., :-1, :] ^ seg[..., 1:, :]  # (..., H-1, W): differs from pixel below
    inner = out[..., :-1, :-1]
    np.logical_or(horiz[..., :-1, :], horiz[..., 1:, :], out=inner)
    inner |= vert[..., :, :-1]
    out[..., -1, :-1] = horiz[..., -1, :]
    out[..., :-1, -1] = vert[..., :, -1]


_BLOCK = np.ones((2, 2), dtype=np.uint8)


def _padded_boundary(seg: np.ndarray, margin: int) -> np.ndarray:
    """Boundary map of one bool (H, W) mask, zero-padded by `margin` on every side.

    Same map as :func:`_boundary_into`, by OpenCV: a pixel is on the boundary when the
    maximum and the minimum of its 2x2 block (anchor (0, 0)) differ. Replicating the last
    row and column gives the official edge rules: on the last row the block only holds
    the right neighbour, on the last column the one below, at the corner nothing.
    """
    u8 = np.ascontiguousarray(seg).view(np.uint8)
    edge = cv2.dilate(u8, _BLOCK, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
    edge ^= cv2.erode(u8, _BLOCK, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
    return cv2.copyMakeBorder(edge, margin, margin, margin, margin,
                              cv2.BORDER_CONSTANT, value=0).view(bool)


def boundary_map(
    seg: np.ndarray, width: int | None = None, height: int | None = None
) -> np.ndarray:
    """One-pixel-wide boundary map of binary masks, as DAVIS 2017 `_seg2bmap`.

    A pixel (y, x) is on the boundary when the 2x2 block (y..y+1, x..x+1) is not constant.
    On the last row only the right neighbour counts, on the last column only the one below,
    and the bottom-right pixel is never a boundary pixel (the official edge rules). The
    boundary is therefore offset by half a pixel towards the origin, and a mask that covers
    the whole frame has no boundary at all.

    Args:
        seg: Masks of shape (..., H, W); bool or numeric (non-zero = foreground).
        width: Width of the wanted map; only W (or None) is supported.
        height: Height of the wanted map; only H (or None) is supported.

    Returns:
        bool array with the shape of `seg`.

    Raises:
        ValueError: If `seg` has fewer than 2 dimensions or an empty frame, or a size other
            than (H, W) is asked for (the official resize branch is not implemented).
    """
    seg = np.asarray(seg)
    if seg.ndim < 2 or 0 in seg.shape[-2:]:
        raise ValueError(f"seg must have shape (..., H, W) with H, W >= 1, got {seg.shape}")
    h, w = seg.shape[-2:]
    if (width is not None and width != w) or (height is not None and height != h):
        raise ValueError(
            f"boundary_map only supports the mask's own size {w}x{h} (width x height); "
            f"got width={width}, height={height}"
        )
    bmap = np.zeros(seg.shape, dtype=bool)
    _boundary_into(seg if seg.dtype == np.bool_ else seg != 0, bmap)
    return bmap


def boundary_radius(bound_th: float, height: int, width: int) -> float:
    """Dilation radius in pixels: `bound_th` itself if >= 1, else a fraction of the diagonal.

    Equals the official ``ceil(bound_th * norm((H, W)))``; 8 for 480x854 at 0.008.

    Raises:
        ValueError: If `bound_th` is not a positive finite number.
    """
    valid = isinstance(bound_th, numbers.Real) and not isinstance(bound_th, bool)
    if not (valid and math.isfinite(bound_th) and bound_th > 0):
        raise ValueError(f"bound_th must be a positive finite number, got {bound_th!r}")
    value = float(bound_th)
    if value >= 1:
        return value
    # np.linalg.norm of the shape is sqrt(float(H*H + W*W)), which this reproduces exactly.
    return float(math.ceil(value * math.sqrt(float(height * height + width * width))))


def disk_kernel(radius: float) -> np.ndarray:
    """The official dilation kernel, skimage ``disk(radius)``: bool (n, n) with offsets
    (x, y) in arange(-radius, radius + 1) and x^2 + y^2 <= radius^2.

    Defined here, with the same float arithmetic, so scoring does not import skimage
    (and SciPy behind it, ~1 s); tests check it equals skimage's for many radii.
    """
    offsets = np.arange(-radius, radius + 1)
    return offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2


@lru_cache(maxsize=16)
def _disk_rectangles(radius: float) -> tuple[np.ndarray, int]:
    """The official dilation kernel, skimage ``disk(radius)``, as a union of rectangles.

    cv2.dilate(src, disk)(p) is 1 iff src has a pixel at p + (i - cx, j - cy) for some
    kernel pixel (i, j), (cx, cy) = the kernel centre (cv2's default anchor); outside the
    image counts as 0. Each row of a disk is one run of pixels and the runs are nested, so
    the kernel is the union of, for each distinct run, that run times the rows whose run
    contains it (6 rectangles for r = 8 instead of 197 pixels). Any other kernel falls back
    to one rectangle per run. The result is checked to rebuild the kernel exactly.

    Returns:
        (rects, margin): int64 (K, 4) offsets (dx0, dx1, dy0, dy1), inclusive, relative to
        p, largest area first; and the largest |offset|, the zero padding that keeps
        every window in range.
    """
    kernel = disk_kernel(radius)
    cy, cx = kernel.shape[0] // 2, kernel.shape[1] // 2
    runs = []  # (row, first col, last col)
    for row, line in enumerate(kernel):
        edges = np.flatnonzero(np.diff(np.concatenate(([0], line.view(np.int8), [0]))))
        runs += [(row, first, last - 1) for first, last in edges.reshape(-1, 2)]
    rects = [(first, last, row, row) for row, first, last in runs]
    if len({row for row, _, _ in runs}) == len(runs):  # one run per row: try to merge
        merged = []
        for first, last in sorted({(a, b) for _, a, b in runs}):
            rows = [r for r, a, b in runs if a <= first and last <= b]
            merged.append((first, last, rows[0], rows[-1]))
        rebuilt = np.zeros_like(kernel)
        for x0, x1, y0, y1 in merged:
            rebuilt[y0 : y1 + 1, x0 : x1 + 1] = True
        if np.array_equal(rebuilt, kernel):
            rects = merged
    offsets = np.array(rects, dtype=np.int64).reshape(-1, 4) - np.array([cx, cx, cy, cy])
    area = (offsets[:, 1] - offsets[:, 0] + 1) * (offsets[:, 3] - offsets[:, 2] + 1)
    offsets = offsets[np.argsort(-area, kind="stable")]  # largest first (_count_hits)
    return offsets, int(np.abs(offsets).max(initial=0))


def _count_hits(integral: np.ndarray, points: np.ndarray, width: int, rects: np.ndarray) -> int:
    """How many `points` have a set pixel in at least one of their rectangle windows.

    The rectangles are tried largest first, each only at the points no earlier one
    covered: where the boundaries agree, most points are settled by the first.

    Args:
        integral: int32 (h + 1, width + 1) cv2.integral of the zero-padded (h, width) map.
        points: int64 (n,) flat indices into that padded map, far enough from its edges
            that every window stays inside.
        width: Width of the padded map.
        rects: int64 (K, 4) window offsets (dx0, dx1, dy0, dy1), inclusive, largest first.

    Returns:
        The number of points whose dilated value (the union of the windows) is 1.
    """
    stride = width + 1
    flat = integral.ravel()
    left = points + points // width  # the same (y, x) in the integral's wider rows
    n = len(left)
    for dx0, dx1, dy0, dy1 in rects:
        # Window sum = S[y1+1, x1+1] - S[y0, x1+1] - S[y1+1, x0] + S[y0, x0].
        bottom, top = left + (dy1 + 1) * stride, left + dy0 * stride
        inside = (flat[bottom + dx1 + 1] - flat[top + dx1 + 1] - flat[bottom + dx0]
                  + flat[top + dx0])
        left = left[inside == 0]
        if not len(left):
            break
    return n - len(left)


def _count_hits_dense(
    source: np.ndarray, targets: np.ndarray, rects: np.ndarray, margin: int
) -> int:
    """Like :func:`_count_hits`, by dilating all of `source`; faster for dense boundaries.

    Args:
        source: bool (h, w) boundary map, zero-padded by `margin` on every side.
        targets: bool (h, w) boundary map whose covered pixels are counted, padded alike.
        rects: int64 (K, 4) window offsets (dx0, dx1, dy0, dy1), inclusive.
        margin: The padding width, at least the largest |offset|.

    Returns:
        The number of `targets` pixels covered by `source` dilated by the union of windows.
    """
    h, w = source.shape[0] - 2 * margin, source.shape[1] - 2 * margin
    src = source.view(np.uint8)
    covered = np.zeros((h, w), dtype=bool)
    for dx0, dx1, dy0, dy1 in rects:
        # With anchor (0, 0), out[y, x] = any(src[y : y + height, x : x + width]), so the
        # window of inner pixel (y, x) is out[y + margin + dy0, x + margin + dx0].
        kernel = np.ones((dy1 - dy0 + 1, dx1 - dx0 + 1), dtype=np.uint8)
        out = cv2.dilate(src, kernel, anchor=(0, 0)).view(bool)
        covered |= out[margin + dy0 : margin + dy0 + h, margin + dx0 : margin + dx0 + w]
    inner = targets[margin : margin + h, margin : margin + w]
    return np.count_nonzero(np.logical_and(covered, inner, out=covered))


def _frame_counts(
    gt: np.ndarray, pred: np.ndarray, rects: np.ndarray, margin: int, buf: np.ndarray
) -> tuple[int, int, int, int, int, int, int]:
    """Pixel and boundary counts of one (H, W) frame pair, from one crop to their union.

    Returns:
        (n_gt, n_pred, inter): foreground pixels of gt, of pred and of both (J's counts);
        (b_gt, b_pred, gt_hit, pred_hit): boundary pixels of gt and pred, gt boundary
        pixels covered by the dilated pred boundary (recall numerator) and the reverse
        (precision numerator); by window sums at those pixels (:func:`_count_hits`), or
        for dense boundaries by dilating the whole crop (:func:`_count_hits_dense`). Both
        hits are 0 when either boundary is empty (F is then fixed by the special cases).
        `buf` is bool (H, W) scratch space.
    """
    union = np.logical_or(gt, pred, out=buf)
    rows = np.flatnonzero(union.any(axis=1))
    if rows.size == 0:
        return 0, 0, 0, 0, 0, 0, 0
    cols = np.flatnonzero(union[rows[0] : rows[-1] + 1].any(axis=0))
    # One pixel before the box (its 2x2 block reaches into the box) and one after it (all
    # zero, so the cropped last row/column rule gives the same 0 as the full frame does).
    ys = slice(max(rows[0] - 1, 0), rows[-1] + 2)
    xs = slice(max(cols[0] - 1, 0), cols[-1] + 2)
    gt, pred = gt[ys, xs], pred[ys, xs]
    # Nothing lies outside the union's box, so J's counts on the crop are the frame's.
    n_gt, n_pred = np.count_nonzero(gt), np.count_nonzero(pred)
    inter = np.count_nonzero(np.logical_and(gt, pred, out=buf[: gt.shape[0], : gt.shape[1]]))
    # Boundaries go into zero-padded maps: no window leaves them, and zero padding is what
    # cv2.dilate's default border does for a dilation.
    gt_b, pred_b = _padded_boundary(gt, margin), _padded_boundary(pred, margin)
    shape = gt_b.shape
    b_gt, b_pred = np.count_nonzero(gt_b), np.count_nonzero(pred_b)
    if b_gt == 0 or b_pred == 0:
        return n_gt, n_pred, inter, b_gt, b_pred, 0, 0
    if b_gt + b_pred > 2 * _DENSE_BOUNDARY * gt.size:
        gt_hit = _count_hits_dense(pred_b, gt_b, rects, margin)
        pred_hit = _count_hits_dense(gt_b, pred_b, rects, margin)
    else:
        gt_pts, pred_pts = np.flatnonzero(gt_b), np.flatnonzero(pred_b)
        gt_hit = _count_hits(cv2.integral(pred_b.view(np.uint8)), gt_pts, shape[1], rects)
        pred_hit = _count_hits(cv2.integral(gt_b.view(np.uint8)), pred_pts, shape[1], rects)
    return n_gt, n_pred, inter, b_gt, b_pred, gt_hit, pred_hit


def _jaccard(n_gt: np.ndarray, n_pred: np.ndarray, inter: np.ndarray) -> np.ndarray:
    """J per frame from int64 counts; 1 where both masks are empty."""
    union = n_gt + n_pred - inter
    empty = union == 0
    # Same int / int true division as the official code, so the floats are identical.
    return np.where(empty, 1.0, inter / np.where(empty, 1, union))


def _f_measure(n_gt: np.ndarray, n_pred: np.ndarray, gt_hit: np.ndarray,
               pred_hit: np.ndarray) -> np.ndarray:
    """F per frame from int64 boundary counts, with the official special cases."""
    both = (n_gt > 0) & (n_pred > 0)
    # Same int / float divisions and operation order as the official code: identical floats.
    precision = np.where(both, pred_hit / np.maximum(n_pred, 1).astype(np.float64), 0.0)
    recall = np.where(both, gt_hit / np.maximum(n_gt, 1).astype(np.float64), 0.0)
    precision[n_pred == 0] = 1.0
    recall[n_gt == 0] = 1.0
    denom = precision + recall
    positive = denom > 0
    return np.where(positive, 2 * precision * recall / np.where(positive, denom, 1.0), 0.0)


def _all_counts(gt: np.ndarray, pred: np.ndarray, bound_th: float) -> np.ndarray:
    """int64 (T, 7) :func:`_frame_counts` of every frame of a validated pair."""
    gt, pred = _mask_pair(gt, pred)
    rects, margin = _disk_rectangles(boundary_radius(bound_th, *gt.shape[1:]))
    buf = np.empty(gt.shape[1:], dtype=bool)
    return np.array(
        [_frame_counts(g, p, rects, margin, buf) for g, p in zip(gt, pred, strict=True)],
        dtype=np.int64,
    ).reshape(-1, 7)


def region_and_boundary(
    gt: np.ndarray, pred: np.ndarray, bound_th: float = DEFAULT_BOUND_TH
) -> tuple[np.ndarray, np.ndarray]:
    """(J, F) per frame, equal to (:func:`region_similarity`, :func:`boundary_f_measure`).

    Both come from one crop of each frame to the union of the two masks, so a frame is
    read once for both measures.

    Returns:
        Two float64 arrays of shape (T,).

    Raises:
        ValueError: As :func:`boundary_f_measure`.
    """
    n_gt, n_pred, inter, b_gt, b_pred, gt_hit, pred_hit = _all_counts(gt, pred, bound_th).T
    return _jaccard(n_gt, n_pred, inter), _f_measure(b_gt, b_pred, gt_hit, pred_hit)


def boundary_f_measure(
    gt: np.ndarray, pred: np.ndarray, bound_th: float = DEFAULT_BOUND_TH
) -> np.ndarray:
    """Per-frame boundary F-measure, as DAVIS 2017 `db_eval_boundary`.

    Boundaries come from :func:`boundary_map`; a boundary pixel is matched when the other
    mask's boundary, dilated by skimage ``disk(r)`` with r = :func:`boundary_radius`, covers
    it. precision = matched pred / pred boundary pixels, recall = matched gt / gt boundary
    pixels, F = 2PR / (P + R). Official special cases: empty pred boundary and non-empty gt
    boundary gives P=1, R=0; the reverse P=0, R=1; both empty P=R=1 (so F=1); P+R=0 gives F=0.
    Note that a mask covering the whole frame has an empty boundary.

    Args:
        gt: Ground-truth masks, (T, H, W) or (H, W); bool or numeric (non-zero = foreground).
        pred: Predicted masks, same shape as `gt`.
        bound_th: Boundary tolerance: a fraction of the image diagonal if < 1, else pixels.

    Returns:
        float64 array of shape (T,); always 1-D, an (H, W) input gives shape (1,).

    Raises:
        ValueError: If the shapes differ or are not (T, H, W) / (H, W), or `bound_th` is not
            a positive finite number.
    """
    _, _, _, b_gt, b_pred, gt_hit, pred_hit = _all_counts(gt, pred, bound_th).T
    return _f_measure(b_gt, b_pred, gt_hit, pred_hit)
