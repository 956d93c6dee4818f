"""COCO run-length encoding (RLE) of masks: encode, check, decode.

Shared by the RefCOCO and referring-video readers and writers. pycocotools does not check
that the runs of a compressed counts string fill the mask before it writes them, so a
malformed string could overrun its buffer; `rle_run_lengths` parses the string first (the
format of pycocotools' maskApi.c `rleFrString`) and `decode_rle` checks the total.
"""

import numpy as np
from pycocotools import mask as mask_utils

# Characters of one value beyond which its bits no longer fit in int64 (5 bits each).
_MAX_VECTOR_CHARS = 12


def rle_run_lengths(counts: str | bytes) -> list[int]:
    """Run lengths of a compressed COCO RLE counts string.

    Raises:
        ValueError: the string ends in the middle of a value, has a character outside the
            format, or gives a negative run.
    """
    return [int(v) for v in run_lengths_array(counts)]


def run_lengths_array(counts: str | bytes) -> np.ndarray:
    """:func:`rle_run_lengths` as an int64 array, parsed with whole-array operations.

    The format (pycocotools maskApi.c `rleFrString`): each value is a little-endian run
    of 5-bit groups, a character c - 48 carrying 5 bits and a continuation bit 0x20; the
    last character's bit 0x10 is the sign. From the fourth value on, a value is stored
    as the difference to the value two places before.

    Raises:
        ValueError: As :func:`rle_run_lengths`.
    """
    data = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    c = np.frombuffer(data, dtype=np.uint8).astype(np.int64) - 48
    bad = np.flatnonzero((c < 0) | (c >= 64))
    if bad.size:
        raise ValueError(f"RLE counts string has an invalid character {chr(data[bad[0]])!r}")
    more = (c & 0x20) != 0
    if c.size and more[-1]:
        raise ValueError("RLE counts string ends in the middle of a value")
    ends = np.flatnonzero(~more)
    starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
    lengths = ends - starts + 1
    if lengths.size and lengths.max() > _MAX_VECTOR_CHARS:
        return np.array(_run_lengths_python(data), dtype=object)
    shift = 5 * (np.arange(c.size) - np.repeat(starts, lengths))
    values = np.add.reduceat((c & 0x1F) << shift, starts) if c.size else c
    negative = (c[ends] & 0x10) != 0
    values[negative] -= np.int64(1) << (5 * lengths[negative])
    # v[i] = x[i] + v[i - 2] for i >= 3: running sums over the odd places and over the
    # even places from 2 on.
    values[1::2] = np.cumsum(values[1::2])
    values[2::2] = np.cumsum(values[2::2])
    if values.size and values.min() < 0:
        raise ValueError("RLE has a negative run length")
    return values


def _run_lengths_python(data: bytes) -> list[int]:
    """The character-by-character parser (Python ints): values too long for int64."""
    runs: list[int] = []
    pos = 0
    while pos < len(data):
        value, shift, more = 0, 0, True
        while more:
            c = data[pos] - 48
            value |= (c & 0x1F) << (5 * shift)
            more = bool(c & 0x20)
            pos += 1
            shift += 1
            if not more and c & 0x10:
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        if value < 0:
            raise ValueError("RLE has a negative run length")
        runs.append(value)
    return runs


def encode_mask(mask: np.ndarray) -> dict:
    """Compressed RLE of one (H, W) mask (non-zero = foreground), JSON-ready:
    {"size": [H, W], "counts": str}."""
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"encode_mask needs one (H, W) mask, got shape {arr.shape}")
    rle = mask_utils.encode(np.asfortranarray(arr != 0, dtype=np.uint8))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: object, where: str = "RLE") -> np.ndarray:
    """Decode one RLE ({"size": [h, w], "counts": str | bytes | list[int]}).

    Args:
        rle: the RLE dict.
        where: text naming the file and key, used in error messages.

    Returns:
        (h, w) bool array, C-contiguous (pycocotools decodes column-major; a C-order
        copy keeps row-wise work on it fast).

    Raises:
        ValueError: `rle` is not a well-formed RLE whose runs cover exactly h * w pixels.
    """
    try:
        h, w = (int(s) for s in rle["size"])  # type: ignore[index]
        counts = rle["counts"]  # type: ignore[index]
        if h < 0 or w < 0:
            raise ValueError(f"negative size {h}x{w}")
        if isinstance(counts, list):
            if min(counts, default=0) < 0:
                raise ValueError("negative run length")
            total = sum(int(c) for c in counts)
            coded = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
        else:
            text = counts.decode("ascii") if isinstance(counts, bytes) else str(counts)
            total = int(run_lengths_array(text).sum())
            coded = {"size": [h, w], "counts": text.encode("ascii")}
        if total != h * w:
            raise ValueError(f"runs cover {total} pixels, size {h}x{w} needs {h * w}")
        return np.ascontiguousarray(mask_utils.decode(coded)).view(bool)
    except (KeyError, TypeError, ValueError, UnicodeError) as err:
        raise ValueError(f"{where}: not a decodable RLE ({err})") from err
