"""Exact, fast DAVIS 2017 region similarity (J) and boundary F-measure (F).

The definitions are those of the public davisvideochallenge/davis2017-evaluation code
(`davis2017/metrics.py`: `db_eval_iou`, `db_eval_boundary`, `f_measure`, `_seg2bmap`),
which MeViS, Ref-DAVIS17, Ref-YTVOS and ReVOS all score with. The results are bit-identical
to that code (tests check this on real DAVIS masks); only the computation differs:

* each frame is cropped to the bounding box of ``gt | pred`` plus the one-pixel margin the
  boundary map needs, so the work scales with the object, not the frame;
* the crops are packed into bits (np.packbits, 8 pixels a byte, 64 in a word), several
  frames into one array; boundary maps are XORs of that array with itself moved one
  pixel right and one row down, and the dilation by skimage ``disk(r)`` (official:
  ``cv2.dilate``) is the OR of each kernel row's run of pixels, each run an OR of the
  array moved by whole pixels (windows of 1, 2, 4, ... pixels, built by doubling and
  shared by the runs) and moved by whole rows; so every step is a whole-array operation
  on about a sixtieth of the bytes of the masks, the same whatever the masks look like;
* counts are popcounts (np.bitwise_count) of those words.

Masks may be bool or any numeric dtype; like the official code, non-zero means foreground.
Void pixels (an optional argument of the official code, unused by the referring benchmarks)
are not supported.
"""

import math
import numbers
from collections.abc import Iterable
from functools import lru_cache

import numpy as np

DEFAULT_BOUND_TH = 0.008
# Frames are scored in batches of about this many 64-bit words of packed bits (256 KiB an
# array: the dilation's dozen live arrays stay in a core's cache).
_BATCH_WORDS = 1 << 15

__all__ = [
    "DEFAULT_BOUND_TH",
    "boundary_f_measure",
    "boundary_map",
    "boundary_radius",
    "disk_kernel",
    "region_and_boundary",
    "region_and_boundary_pairs",
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


_U64 = np.uint64


def _shifted(x: np.ndarray, s: int) -> np.ndarray:
    """Bit stream `x` moved by `s` pixels: out bit i = x bit i + s, zeros shifted in.

    `x` is a 1-D uint64 array read as one little-endian bit stream (bit i of the stream
    is bit i % 64 of word i // 64), the layout of np.packbits(..., bitorder="little").
    """
    if 0 < s < 64:
        out = x >> _U64(s)
        out[:-1] |= x[1:] << _U64(64 - s)
        return out
    if -64 < s < 0:
        out = x << _U64(-s)
        out[1:] |= x[:-1] >> _U64(64 + s)
        return out
    q, b = divmod(s, 64)
    n = len(x)
    out = np.zeros_like(x)
    lo, hi = max(0, -q), min(n, n - q)
    if b == 0:
        if lo < hi:
            out[lo:hi] = x[lo + q : hi + q]
        return out
    if lo < hi:
        np.right_shift(x[lo + q : hi + q], _U64(b), out=out[lo:hi])
    lo, hi = max(0, -q - 1), min(n, n - q - 1)
    if lo < hi:
        out[lo:hi] |= x[lo + q + 1 : hi + q + 1] << _U64(64 - b)
    return out


def _or_shifted(x: np.ndarray, s: int) -> np.ndarray:
    """x | :func:`_shifted` (x, s), with fewer passes for 0 < |s| < 64."""
    if not 0 < abs(s) < 64:
        return x | _shifted(x, s)
    if s > 0:
        out = x >> _U64(s)
        out |= x
        out[:-1] |= x[1:] << _U64(64 - s)
    else:
        out = x << _U64(-s)
        out |= x
        out[1:] |= x[:-1] >> _U64(64 + s)
    return out


@lru_cache(maxsize=16)
def _kernel_runs(radius: float) -> tuple[tuple[tuple[int, int], tuple[int, ...]], ...]:
    """The official dilation kernel, skimage ``disk(radius)``, as horizontal runs.

    cv2.dilate(src, kernel)(p) is 1 iff src has a pixel at p + (i - cx, j - cy) for some
    kernel pixel (i, j), (cx, cy) = the kernel centre (cv2's default anchor); outside the
    image counts as 0. Each kernel row is cut into runs of pixels.

    Returns:
        ((dx0, dx1), (dy, ...)) per distinct run: the inclusive column offsets of the run
        and the row offsets of the kernel rows that hold it.
    """
    kernel = disk_kernel(radius)
    cy, cx = kernel.shape[0] // 2, kernel.shape[1] // 2
    rows: dict[tuple[int, int], list[int]] = {}
    for row, line in enumerate(kernel):
        edges = np.flatnonzero(np.diff(np.concatenate(([0], line.view(np.int8), [0]))))
        for first, last in edges.reshape(-1, 2):
            rows.setdefault((int(first) - cx, int(last) - 1 - cx), []).append(row - cy)
    return tuple((run, tuple(dys)) for run, dys in rows.items())


def _dilated(bits: np.ndarray, words: int, runs: tuple) -> np.ndarray:
    """Packed bit rows `bits` (rows of `words` words, flattened) dilated by a kernel.

    out(y, x) = any bits(y + dy, x + dx) over the kernel offsets (:func:`_kernel_runs`),
    read as 0 outside the array. Each run [dx0, dx1] is a window OR built by doubling
    (windows of 1, 2, 4, ... pixels, shared by all runs) and moved to its first offset;
    then each kernel row adds its run, moved by dy rows. Rows are not kept apart in the
    stream: callers leave at least the kernel's reach of zero bits around each row's
    pixels, so no window takes a bit from a neighbouring row.
    """
    windows = {1: bits}

    def window(n: int) -> np.ndarray:  # out(x) = OR of bits(x .. x + n - 1), n a power of 2
        if n not in windows:
            half = window(n // 2)
            windows[n] = _or_shifted(half, n // 2)
        return windows[n]

    out = np.zeros_like(bits)
    total = len(bits)
    for (dx0, dx1), dys in runs:
        n = dx1 - dx0 + 1
        p = 1 << (n.bit_length() - 1)
        run = window(p) if p == n else _or_shifted(window(p), n - p)  # two overlapping
        if dx0:
            run = _shifted(run, dx0)
        for dy in dys:
            k = dy * words
            if abs(k) >= total:
                continue
            if k >= 0:
                out[: total - k] |= run[k:]
            else:
                out[-k:] |= run[: total + k]
    return out


def _segment_sums(row_sums: np.ndarray, starts: np.ndarray, heights: np.ndarray) -> np.ndarray:
    """Sums of `row_sums` over the rows [start, start + height) of each segment."""
    cum = np.concatenate(([0], np.cumsum(row_sums, dtype=np.int64)))
    return cum[starts + heights] - cum[starts]


def _batch_counts(crops: list[tuple[np.ndarray, np.ndarray]], radius: float) -> np.ndarray:
    """(n_gt, n_pred, inter, b_gt, b_pred, gt_hit, pred_hit) of cropped frame pairs.

    All crops go into one array of packed bits (8 pixels a byte, :func:`_shifted`):
    the gt crops one under another, then the pred crops at the same offsets below them,
    each crop followed by a copy of its last row and its last column (a 2x2 block then
    holds only the right neighbour on the frame's last row and only the one below on
    its last column: the official edge rules; a crop that does not end at the frame's
    edge ends in zeros, where the copy changes nothing) and by at least the kernel's
    reach of zeros. Boundaries, the dilation and the counts are then a few dozen
    whole-array operations on about a sixtieth of the bytes of the masks.

    Args:
        crops: (gt, pred) bool (h, w) crops, each of one frame, to the box of the union
            with one zero row/column after it where the frame has one.
        radius: The dilation radius (:func:`boundary_radius`).

    Returns:
        int64 (N, 7).
    """
    runs = _kernel_runs(radius)
    reach = max(max(abs(dx0), abs(dx1), max(abs(dy) for dy in dys)) for (dx0, dx1), dys in runs)
    left = 8 * -(-reach // 8)  # zero pixels before each row (whole bytes)
    heights = np.array([g.shape[0] for g, _ in crops], dtype=np.int64)
    widths = np.array([g.shape[1] for g, _ in crops], dtype=np.int64)
    words = int(-(-(left + int(widths.max()) + 1 + reach) // 64))
    starts = np.concatenate(([0], np.cumsum(heights[:-1] + 1 + reach))).astype(np.int64)
    offset = int(starts[-1] + heights[-1] + 1 + reach)  # first row of the pred crops
    packed = np.zeros((2 * offset, words * 8), dtype=np.uint8)
    counts = np.zeros((len(crops), 7), dtype=np.int64)
    col = left // 8
    for i, (gt, pred) in enumerate(crops):
        h = gt.shape[0]
        gbits = np.packbits(gt, axis=1, bitorder="little")
        pbits = np.packbits(pred, axis=1, bitorder="little")
        s = int(starts[i])
        packed[s : s + h, col : col + gbits.shape[1]] = gbits
        packed[offset + s : offset + s + h, col : col + pbits.shape[1]] = pbits
        counts[i, :2] = np.bitwise_count(gbits).sum(), np.bitwise_count(pbits).sum()
        counts[i, 2] = np.bitwise_count(np.bitwise_and(gbits, pbits, out=gbits)).sum()
    grid = packed.view(_U64)  # (rows, words)
    # Rows of every crop, then the copy of each crop's last column one pixel right of it.
    all_starts = np.concatenate((starts, starts + offset))
    all_heights = np.concatenate((heights, heights))
    all_widths = np.concatenate((widths, widths))
    rows = np.repeat(all_starts, all_heights + 1) + np.concatenate(
        [np.arange(h + 1) for h in all_heights])
    last = np.repeat(left + all_widths - 1, all_heights + 1)
    grid[rows, (last + 1) // 64] |= ((grid[rows, last // 64] >> (last % 64).astype(_U64))
                                     & _U64(1)) << ((last + 1) % 64).astype(_U64)
    ends = all_starts + all_heights
    grid[ends] = grid[ends - 1]  # the copy of the last row (with its copied column)
    stream = grid.ravel()
    right = _shifted(stream, 1)
    top, below = stream[:-words], stream[words:]
    # Boundary: the 2x2 block (y..y+1, x..x+1) is not constant.
    bmap = top ^ right[:-words]
    bmap |= top ^ below
    bmap |= top ^ right[words:]
    grid_b = bmap.reshape(-1, words)
    # Clear what the copies and the zeros next to the crops added: the copied row and
    # column, the row above each crop and the column left of it.
    grid_b[ends] = 0
    above = all_starts[all_starts > 0] - 1
    grid_b[above] = 0
    rows_b = rows[rows < len(grid_b)]
    last_b = last[rows < len(grid_b)] + 1
    grid_b[rows_b, last_b // 64] &= ~(_U64(1) << (last_b % 64).astype(_U64))
    grid_b[:, (left - 1) // 64] &= ~(_U64(1) << _U64((left - 1) % 64))
    dilated = _dilated(bmap, words, runs)
    split = offset * words
    gt_b, pred_b = bmap[:split], bmap[split:]
    per_row = np.bitwise_count(bmap).reshape(-1, words).sum(axis=1, dtype=np.int64)
    counts[:, 3] = _segment_sums(per_row, starts, heights)
    counts[:, 4] = _segment_sums(per_row, starts + offset, heights)
    for k, (target, source) in enumerate(((gt_b, dilated[split:]), (pred_b, dilated[:split]))):
        n = min(len(target), len(source))
        hit = np.bitwise_and(target[:n], source[:n])
        per_row = np.bitwise_count(hit).reshape(-1, words).sum(axis=1, dtype=np.int64)
        counts[:, 5 + k] = _segment_sums(per_row, starts, heights)
    return counts



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


def _crop(gt: np.ndarray, pred: np.ndarray, buf: np.ndarray) -> tuple[slice, slice] | None:
    """The crop of one (H, W) frame pair: the union's bounding box, one pixel more before
    it (its 2x2 block reaches into the box) and one after it where the frame has one (all
    zero). Nothing lies outside it, so every count of the frame is a count of the crop.
    None when both masks are empty. `buf` is bool (H, W) scratch space."""
    union = np.logical_or(gt, pred, out=buf)
    rows = np.flatnonzero(union.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(union[rows[0] : rows[-1] + 1].any(axis=0))
    return (slice(max(int(rows[0]) - 1, 0), int(rows[-1]) + 2),
            slice(max(int(cols[0]) - 1, 0), int(cols[-1]) + 2))


def _pair_counts(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]], shape: tuple[int, int], bound_th: float
) -> np.ndarray:
    """int64 (N, 7) counts (n_gt, n_pred, inter, b_gt, b_pred, gt_hit, pred_hit) of
    bool (H, W) frame pairs of one `shape`; batches of crops hold about `_BATCH_WORDS`
    words."""
    pairs = list(pairs)
    radius = boundary_radius(bound_th, *shape)
    reach = math.ceil(radius) + 1
    counts = np.zeros((len(pairs), 7), dtype=np.int64)
    buf = np.empty(shape, dtype=bool)
    batch: list[int] = []
    crops: list[tuple[np.ndarray, np.ndarray]] = []
    size = 0
    for t, (g, p) in enumerate(pairs):
        box = _crop(g, p, buf)
        if box is None:
            continue
        crops.append((g[box], p[box]))
        batch.append(t)
        h, w = crops[-1][0].shape
        size += 2 * (h + 1 + reach) * -(-(w + 2 * reach + 9) // 64)
        if size >= _BATCH_WORDS:
            counts[batch] = _batch_counts(crops, radius)
            batch, crops, size = [], [], 0
    if batch:
        counts[batch] = _batch_counts(crops, radius)
    return counts


def _all_counts(gt: np.ndarray, pred: np.ndarray, bound_th: float) -> np.ndarray:
    """int64 (T, 7) :func:`_pair_counts` of every frame of a (gt, pred) pair of masks."""
    gt, pred = _mask_pair(gt, pred)
    return _pair_counts(zip(gt, pred, strict=True), gt.shape[1:], bound_th)


def region_and_boundary_pairs(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]], bound_th: float = DEFAULT_BOUND_TH
) -> tuple[np.ndarray, np.ndarray]:
    """(J, F) of single-frame (gt, pred) pairs of one frame size, scored together.

    Pair by pair equal to :func:`region_and_boundary` of each (H, W) pair; one call shares
    the work (one packed array and one pass of each operation for a batch of pairs), as
    scoring many expressions of a video frame by frame needs.

    Args:
        pairs: (gt, pred) masks, each (H, W), bool or numeric (non-zero = foreground).
        bound_th: As :func:`boundary_f_measure`.

    Returns:
        Two float64 arrays of shape (N,).

    Raises:
        ValueError: If a mask is not (H, W), the masks of a pair differ in shape, two
            pairs differ in frame size, or `bound_th` is not a positive finite number.
    """
    checked = []
    for gt, pred in pairs:
        gt, pred = _as_masks("gt", gt), _as_masks("pred", pred)
        if gt.ndim != 2 or gt.shape != pred.shape:
            raise ValueError(f"each pair must be two (H, W) masks of one shape, got gt "
                             f"{gt.shape} and pred {pred.shape}")
        if checked and gt.shape != checked[0][0].shape:
            raise ValueError(f"all pairs must have one frame size, got "
                             f"{checked[0][0].shape} and {gt.shape}")
        checked.append((gt, pred))
    if not checked:
        boundary_radius(bound_th, 1, 1)
        return np.empty(0), np.empty(0)
    counts = _pair_counts(checked, checked[0][0].shape, bound_th)
    n_gt, n_pred, inter, b_gt, b_pred, gt_hit, pred_hit = counts.T
    return _jaccard(n_gt, n_pred, inter), _f_measure(b_gt, b_pred, gt_hit, pred_hit)


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
