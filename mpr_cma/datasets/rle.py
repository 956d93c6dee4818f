"""COCO run-length encoding (RLE) of masks: encode, check, decode.

Shared by the RefCOCO and referring-video readers and writers. pycocotools does not check
that the runs of a compressed counts string fill the mask before it writes them, so a
malformed string could overrun its buffer; `rle_run_lengths` parses the string first (the
format of pycocotools' maskApi.c `rleFrString`) and `decode_rle` checks the total.
"""

import numpy as np
from pycocotools import mask as mask_utils


def rle_run_lengths(counts: str | bytes) -> list[int]:
    """Run lengths of a compressed COCO RLE counts string.

    Raises:
        ValueError: the string ends in the middle of a value, has a character outside the
            format, or gives a negative run.
    """
    data = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    runs: list[int] = []
    pos = 0
    while pos < len(data):
        value, shift, more = 0, 0, True
        while more:
            if pos >= len(data):
                raise ValueError("RLE counts string ends in the middle of a value")
            c = data[pos] - 48
            if not 0 <= c < 64:
                raise ValueError(f"RLE counts string has an invalid character {chr(data[pos])!r}")
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
        (h, w) bool array.

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
            total = sum(rle_run_lengths(text))
            coded = {"size": [h, w], "counts": text.encode("ascii")}
        if total != h * w:
            raise ValueError(f"runs cover {total} pixels, size {h}x{w} needs {h * w}")
        return mask_utils.decode(coded).astype(bool)
    except (KeyError, TypeError, ValueError, UnicodeError) as err:
        raise ValueError(f"{where}: not a decodable RLE ({err})") from err
