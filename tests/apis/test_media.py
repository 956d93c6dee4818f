"""mpr_cma.apis.media: images and videos decode to RGB frames; bad uploads and videos
over the frame cap are MediaErrors naming the file."""

import cv2
import numpy as np
import pytest
from PIL import Image

from mpr_cma.apis.media import (
    DEFAULT_MAX_FRAMES,
    MediaError,
    VideoTooLongError,
    read_media,
)


def _frames(n: int, h: int = 24, w: int = 32) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def _write_video(path, frames) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5, (w, h))
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()


def test_image_is_one_rgb_frame_as_written(tmp_path):
    frame = _frames(1)[0]
    Image.fromarray(frame).save(tmp_path / "cat.png")
    media = read_media(tmp_path / "cat.png")
    assert not media.is_video and media.names == ["cat"]
    np.testing.assert_array_equal(media.frames[0], frame)  # PNG is lossless, RGB order kept


def test_grey_and_rgba_images_become_rgb(tmp_path):
    Image.fromarray(np.full((8, 9), 7, np.uint8)).save(tmp_path / "g.png")
    Image.fromarray(np.full((8, 9, 4), 9, np.uint8)).save(tmp_path / "a.png")
    for name in ("g.png", "a.png"):
        frame = read_media(tmp_path / name).frames[0]
        assert frame.shape == (8, 9, 3) and frame.dtype == np.uint8


def test_video_frames_in_order_and_rgb(tmp_path):
    # Flat colours survive mp4v's lossy coding well enough to check the channel order.
    colours = [(250, 10, 10), (10, 250, 10), (10, 10, 250)]
    frames = [np.full((32, 48, 3), c, np.uint8) for c in colours]
    _write_video(tmp_path / "clip.mp4", frames)
    media = read_media(tmp_path / "clip.mp4")
    assert media.is_video and media.names == ["00000", "00001", "00002"]
    for frame, colour in zip(media.frames, colours, strict=True):
        assert frame.shape == (32, 48, 3)
        assert int(np.argmax(frame.reshape(-1, 3).mean(0))) == int(np.argmax(colour))


def test_video_over_the_cap_is_refused_at_the_cap_not_cut(tmp_path):
    _write_video(tmp_path / "clip.mp4", _frames(4))
    assert len(read_media(tmp_path / "clip.mp4", max_frames=4).frames) == 4
    with pytest.raises(VideoTooLongError, match=r"clip.mp4 has more than 3 frames.*--max-frames"):
        read_media(tmp_path / "clip.mp4", max_frames=3)
    assert DEFAULT_MAX_FRAMES == 64  # docs/app.md and tools/app.py --help state it


@pytest.mark.parametrize("name, content, message", [
    ("bad.png", b"not an image at all", r"cannot read image bad.png"),
    ("bad.mp4", b"not a video at all", r"cannot read video bad.mp4"),
    ("bad.xyz", b"neither", r"cannot read bad.xyz: neither an image nor a video"),
    ("empty.jpg", b"", r"empty.jpg is empty"),
])
def test_unreadable_uploads_name_the_file(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(MediaError, match=message):
        read_media(tmp_path / name)


def test_missing_file_and_unknown_suffix_image(tmp_path):
    with pytest.raises(MediaError, match="file not found: gone.png"):
        read_media(tmp_path / "gone.png")
    # An upload without a known suffix is tried as an image first.
    Image.fromarray(_frames(1)[0]).save(tmp_path / "upload.bin", format="PNG")
    assert not read_media(tmp_path / "upload.bin").is_video
