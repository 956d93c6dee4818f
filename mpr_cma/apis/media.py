"""Read an uploaded image or video into RGB frames, with a frame cap and clear errors.

An upload is a video when its suffix is one of `VIDEO_SUFFIXES` (decoded by OpenCV, every
frame in order), an image when it is one of `IMAGE_SUFFIXES` (decoded by PIL exactly as the
predict path does, `mpr_cma.models.mllm.preprocess.open_image`); any other suffix is tried
as an image, then as a video. A video longer than `max_frames` (default
`DEFAULT_MAX_FRAMES` = 64) is refused rather than cut: SAM-2 encodes every frame of a
request at once, so the cap bounds the memory of one request, and a silently truncated
video would show masks for part of it only. Trim the clip, or raise the cap
(`tools/app.py --max-frames`) where memory allows.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

# 64 frames: a few seconds of video ("a short video"); a longer clip is refused, not cut.
DEFAULT_MAX_FRAMES = 64
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".gif")

__all__ = ["DEFAULT_MAX_FRAMES", "IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "Media", "MediaError",
           "VideoTooLongError", "read_media"]


class MediaError(ValueError):
    """An upload that cannot be used; the message names the file and says why."""


class VideoTooLongError(MediaError):
    """A video with more frames than the cap."""


@dataclass
class Media:
    """Decoded upload.

    Attributes:
        frames: RGB frames, each (H, W, 3) uint8, all of one size; one for an image.
        names: one name per frame ("00000", ... for a video; the file stem for an image).
        is_video: whether the upload was a video (even a one-frame one).
        source: the file read.
    """

    frames: list[np.ndarray]
    names: list[str]
    is_video: bool
    source: Path


def _read_image(path: Path) -> np.ndarray:
    from mpr_cma.models.mllm.preprocess import open_image

    try:
        return np.asarray(open_image(path))
    except OSError as err:  # PIL's reason repeats the full (temporary) path
        raise MediaError(f"cannot read image {path.name}: the file does not decode as an "
                         "image") from err


def _read_video(path: Path, max_frames: int) -> list[np.ndarray]:
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    try:
        while capture.isOpened():
            ok, frame = capture.read()
            if not ok:
                break
            if len(frames) == max_frames:
                raise VideoTooLongError(
                    f"video {path.name} has more than {max_frames} frames, the app's cap "
                    f"(DEFAULT_MAX_FRAMES, tools/app.py --max-frames): trim the clip")
            if frame.ndim == 2:
                frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
            frames.append(np.ascontiguousarray(frame[..., 2::-1]))  # BGR(A) -> RGB
    finally:
        capture.release()
    if not frames:
        raise MediaError(f"cannot read video {path.name}: no frame could be decoded")
    return frames


def read_media(path: str | Path, max_frames: int = DEFAULT_MAX_FRAMES) -> Media:
    """Decode an uploaded image or video (see the module docstring for the rules).

    Args:
        path: the uploaded file.
        max_frames: most frames of a video (>= 1); a longer one is refused.

    Returns:
        `Media` with RGB uint8 frames.

    Raises:
        MediaError: a missing or empty file, or one that decodes as neither an image nor
            a video; VideoTooLongError (a MediaError): a video over `max_frames`. Every
            message names the file.
    """
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"file not found: {path.name}")
    if path.stat().st_size == 0:
        raise MediaError(f"{path.name} is empty")
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        frames = _read_video(path, max_frames)
        return Media(frames, [f"{i:05d}" for i in range(len(frames))], True, path)
    if suffix in IMAGE_SUFFIXES:
        return Media([_read_image(path)], [path.stem], False, path)
    try:
        return Media([_read_image(path)], [path.stem], False, path)
    except MediaError:
        pass
    try:
        frames = _read_video(path, max_frames)
    except VideoTooLongError:
        raise
    except MediaError:
        raise MediaError(f"cannot read {path.name}: neither an image nor a video") from None
    return Media(frames, [f"{i:05d}" for i in range(len(frames))], True, path)
