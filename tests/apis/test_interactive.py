"""mpr_cma.apis.run_request on the tiny model: answers, per-frame overlays and MBA attention
pairs; bad input is a refused Response with a message, never an exception."""

import cv2
import numpy as np
import pytest
from PIL import Image

from mpr_cma.apis import Response, run_request

SEG = "It is [SEG]."


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("media") / "scene.png"
    frame = np.zeros((37, 50, 3), np.uint8)
    frame[8:30, 10:40] = (230, 60, 40)
    Image.fromarray(frame).save(path)
    return path


def _video(path, n: int, h: int = 32, w: int = 48):
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5, (w, h))
    for _ in range(n):
        writer.write(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    writer.release()
    return path


def test_image_answer_overlay_and_attention_with_and_without_gate(tiny_model, image_path):
    response = run_request(tiny_model, image_path, "the red box", answer=SEG)
    assert response.ok and response.has_seg and response.answer == SEG
    assert response.messages == []
    assert response.masks.shape == (1, 37, 50) and response.masks.dtype == bool
    (overlay, caption), = response.overlays
    assert overlay.shape == (37, 50, 3) and overlay.dtype == np.uint8 and caption == "scene"
    # One [SEG]: the Fig. 5 pair, ungated then gated, each over the image.
    assert [c for _, c in response.attention] == ["[SEG] 1: attention, no gate",
                                                  "[SEG] 1: attention x mask gate"]
    assert all(a.shape == (37, 50, 3) for a, _ in response.attention)
    # The overlay changes exactly the masked pixels of the image.
    image = np.asarray(Image.open(image_path))
    changed = (overlay != image).any(-1)
    assert not changed[~response.masks[0]].any()


def test_two_seg_answer_gives_two_attention_pairs(tiny_model, image_path):
    response = run_request(tiny_model, image_path, "the red box",
                           answer="It is [SEG] and [SEG].")
    assert len(response.attention) == 4 and response.attention[2][1].startswith("[SEG] 2")


def test_answer_without_seg_says_so_and_masks_are_empty(tiny_model, image_path):
    response = run_request(tiny_model, image_path, "the red box", answer="There is none.")
    assert response.ok and not response.has_seg and not response.masks.any()
    assert response.answer == "There is none."
    assert "no [SEG]" in response.message and response.attention == []
    assert len(response.overlays) == 1  # the image itself, no mask drawn


def test_video_overlay_per_frame_and_attention_per_mba_frame(tiny_model, tmp_path):
    response = run_request(tiny_model, _video(tmp_path / "clip.mp4", 7), "the dog",
                           answer=SEG, num_key_frames=5)
    assert response.ok and response.is_video and response.masks.shape == (7, 32, 48)
    assert [c for _, c in response.overlays] == [f"frame {i:05d}" for i in range(7)]
    # Sa2VA's frame rule: MBA runs on the 5 [SEG]-prompted key frames, two maps each.
    captions = [c for _, c in response.attention]
    assert len(captions) == 10 and captions[0] == "frame 00000: attention, no gate"
    assert captions[-1] == "frame 00004: attention x mask gate"


def test_attention_off_keeps_hooks_away(tiny_model, tmp_path):
    response = run_request(tiny_model, _video(tmp_path / "clip.mp4", 2), "the dog",
                           answer=SEG, attention=False)
    assert response.ok and response.attention == []
    mba = tiny_model.model.grounding.mba
    assert not mba._forward_hooks and not mba._forward_pre_hooks


@pytest.mark.parametrize("text, message", [
    ("", "the text is empty"),
    ("   ", "the text is empty"),
    (None, "the text is empty"),
    ("the <image> dog", "holds '<image>'"),
    ("the [SEG] dog", "holds [SEG]"),
])
def test_bad_text_is_a_message(tiny_model, image_path, text, message):
    response = run_request(tiny_model, image_path, text, answer=SEG)
    assert isinstance(response, Response) and not response.ok
    assert message in response.message and response.masks is None


def test_bad_uploads_are_messages(tiny_model, tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    cases = {None: "Upload an image or a video first",
             tmp_path / "broken.jpg": "cannot read image broken.jpg",
             tmp_path / "gone.png": "file not found: gone.png",
             _video(tmp_path / "long.mp4", 4): "long.mp4 has more than 3 frames"}
    for media, message in cases.items():
        response = run_request(tiny_model, media, "the dog", answer=SEG, max_frames=3)
        assert not response.ok and message in response.message, (media, response.message)


def test_key_frames_default_to_the_loaded_models_config(tiny_model, tmp_path):
    """Without num_key_frames, a request uses the InferenceModel's (its config's
    num_key_frames): here 2, so MBA maps are drawn for 2 frames of the 4."""
    import dataclasses
    two = dataclasses.replace(tiny_model, num_key_frames=2)
    response = run_request(two, _video(tmp_path / "clip.mp4", 4), "the dog", answer=SEG)
    assert response.ok and len(response.attention) == 4
    assert response.attention[-1][1] == "frame 00001: attention x mask gate"
