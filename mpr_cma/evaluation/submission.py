"""MeViS valid submission: a zip of ``<video>/<exp_id>/<frame>.png`` masks (0 / 255).

The MeViS valid split has no ground truth; it is scored by the benchmark server from a zip
holding one single-channel PNG per (video, expression, frame) listed in
meta_expressions.json, foreground 255 and background 0. :func:`write_submission` packages
saved predictions (any source :func:`~mpr_cma.evaluation.refvos.open_predictions` reads)
and :func:`check_submission` verifies that a zip is complete before it is uploaded.
"""

import logging
import zipfile
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from mpr_cma.datasets.refvos_format import RefVOSSplit
from mpr_cma.evaluation.refvos import (
    PredictionError,
    Predictions,
    check_prediction_index,
)

logger = logging.getLogger(__name__)

__all__ = ["check_submission", "encode_png", "expected_entries", "write_submission"]


def encode_png(mask: np.ndarray) -> bytes:
    """Encode one (H, W) mask (non-zero = foreground) as a single-channel 0/255 PNG."""
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"encode_png needs one (H, W) mask, got shape {arr.shape}")
    ok, buf = cv2.imencode(".png", np.where(arr != 0, 255, 0).astype(np.uint8))
    if not ok:
        raise ValueError("cv2 could not encode the mask as PNG")
    return buf.tobytes()


def expected_entries(split: RefVOSSplit) -> list[str]:
    """Every ``<video>/<exp_id>/<frame>.png`` name a complete submission holds."""
    return [
        f"{e.video}/{e.exp_id}/{frame}.png"
        for e in split.iter_expressions()
        for frame in split.frames(e.video)
    ]


def write_submission(
    split: RefVOSSplit,
    source: Predictions,
    zip_path: str | Path,
    allow_missing: bool = False,
    progress: bool = True,
) -> dict:
    """Write the submission zip from saved predictions and check it is complete.

    Args:
        split: The split's meta_expressions (and JPEG frames, used for the frame size of
            missing masks and to check predicted sizes when present).
        source: The predictions.
        zip_path: Output .zip path (parent folders are created).
        allow_missing: Write empty masks for missing predictions instead of failing.
        progress: Show a progress bar.

    Returns:
        {"zip": str, "num_expressions", "num_frames", "missing": report} where report is
        :func:`check_prediction_index`'s.

    Raises:
        PredictionError: On unknown / missing predictions (see check_prediction_index), a
            predicted size different from the video's frames, or a missing mask whose size
            cannot be told (no JPEG and no other predicted frame of the video).
    """
    missing = check_prediction_index(split, source, allow_missing)
    present = source.index()
    zip_path = Path(zip_path)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = zip_path.with_suffix(".zip.part")
    num_frames = 0
    expressions = list(split.iter_expressions())
    # PNGs are already compressed: store them as they are.
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for expression in tqdm(
            expressions, desc="writing submission", unit="exp", disable=not progress
        ):
            video, exp_id = expression.video, expression.exp_id
            frames = split.frames(video)
            size = split.frame_size(video)
            have = (
                set(source.frames(video, exp_id, frames))
                if exp_id in present.get(video, ())
                else set()
            )
            masks = {f: source.load(video, exp_id, f) for f in frames if f in have}
            for frame, mask in masks.items():
                if size is not None and mask.shape != size:
                    raise PredictionError(
                        f"predictions {source.path}: {video}/{exp_id} frame {frame!r} has size "
                        f"{mask.shape}, the video's frames are {size} (H, W)"
                    )
                size = mask.shape
            for frame in frames:
                if frame not in masks:
                    if size is None:
                        raise PredictionError(
                            f"{video}/{exp_id} frame {frame!r}: missing, and the frame size "
                            f"is unknown (no JPEG under {split.root})"
                        )
                    masks[frame] = np.zeros(size, dtype=bool)
                zf.writestr(f"{video}/{exp_id}/{frame}.png", encode_png(masks[frame]))
                num_frames += 1
    tmp.replace(zip_path)
    check_submission(zip_path, split)
    logger.info("wrote %s: %d expressions, %d masks", zip_path, len(expressions), num_frames)
    return {
        "zip": str(zip_path),
        "num_expressions": len(expressions),
        "num_frames": num_frames,
        "missing": missing,
    }


def check_submission(zip_path: str | Path, split: RefVOSSplit, check_pixels: bool = False) -> dict:
    """Check that a submission zip has exactly the masks meta_expressions.json asks for.

    Args:
        zip_path: The zip.
        split: The split whose meta_expressions.json defines the expected entries.
        check_pixels: Also decode every PNG and check it is single-channel with values in
            {0, 255} and of the video's frame size (when known). Slow on the full split.

    Returns:
        {"complete": True, "num_entries": int}.

    Raises:
        FileNotFoundError: If the zip does not exist.
        PredictionError: Listing missing and unexpected entries, or a bad PNG.
    """
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise FileNotFoundError(f"submission zip not found: {zip_path}")
    expected = expected_entries(split)
    with zipfile.ZipFile(zip_path) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
        absent = sorted(set(expected) - set(names))
        extra = sorted(set(names) - set(expected))
        if absent or extra:
            raise PredictionError(
                f"{zip_path} is not a complete submission for {split.meta_file}: "
                f"{len(absent)} missing ({', '.join(absent[:5])}), "
                f"{len(extra)} unexpected ({', '.join(extra[:5])})"
            )
        if check_pixels:
            for name in names:
                _check_png(zf.read(name), name, split.frame_size(name.split("/")[0]))
    return {"complete": True, "num_entries": len(names)}


def _check_png(data: bytes, name: str, size: tuple[int, int] | None) -> None:
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.ndim != 2:
        raise PredictionError(f"{name}: not a single-channel PNG")
    if not np.isin(arr, (0, 255)).all():
        raise PredictionError(f"{name}: values other than 0 and 255")
    if size is not None and arr.shape != size:
        raise PredictionError(f"{name}: size {arr.shape}, the video's frames are {size}")
