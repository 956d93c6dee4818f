"""Predict path of the tiny model: image and video in, masks of the original size out."""

import numpy as np
import pytest
import torch
from PIL import Image

from mpr_cma.models.inference import encode_prompt, predict_image, predict_video
from tests.models.test_sa2va import build


@pytest.fixture(scope="module")
def model():
    return build("sa2va_mba_tiny.py")


def picture(h=40, w=50, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


def test_prompt_span_holds_exactly_the_expression(model):
    ids, (start, end) = encode_prompt(model.tokenizer, "The  red circle.", 8)
    assert model.tokenizer.decode(ids[start:end]) == " the red circle"
    assert ids.count(model.mllm.img_context_token_id) == 8
    with pytest.raises(ValueError, match="empty"):
        encode_prompt(model.tokenizer, "   ", 8)


def test_image_teacher_forced_and_generated(model):
    image = picture()
    out = predict_image(model, image, "the red circle", answer="It is [SEG].")
    assert out["has_seg"] and out["mask"].shape == (40, 50) and out["mask"].dtype == bool
    assert out["logits"].shape == (40, 50) and torch.isfinite(out["logits"]).all()
    again = predict_image(model, image, "the red circle", answer="It is [SEG].")
    assert np.array_equal(again["mask"], out["mask"])  # deterministic in eval mode
    generated = predict_image(model, image, "the red circle", max_new_tokens=4)
    assert generated["mask"].shape == (40, 50)
    assert generated["has_seg"] == (model.seg_token_id in model.tokenizer.encode(
        generated["answer"], add_special_tokens=False))



def test_image_attention_is_returned_on_request_and_matches_the_mask_pass(model):
    image = picture()
    plain = predict_image(model, image, "the red circle", answer="It is [SEG].")
    out = predict_image(model, image, "the red circle", answer="It is [SEG].",
                        return_attention=True)
    assert "attention" not in plain
    assert np.array_equal(out["mask"], plain["mask"])  # asking for maps changes nothing
    attn, gated = out["attention"]["attn"], out["attention"]["attn_gated"]
    assert attn.shape == gated.shape and attn.shape[0] == 1 and attn.dim() == 5
    assert torch.allclose(attn.sum(-1), torch.ones(attn.shape[:-1]), atol=1e-4)
    assert (gated <= attn + 1e-6).all()  # the gate is a sigmoid in (0, 1)
    no_seg = predict_image(model, image, "the red circle", answer="No.",
                           return_attention=True)
    assert not no_seg["has_seg"] and "attention" not in no_seg

def test_video_masks_per_frame(model, tmp_path):
    paths = []
    for t in range(3):
        path = tmp_path / f"{t:05d}.jpg"
        picture(seed=t).save(path)
        paths.append(path)
    out = predict_video(model, paths, "the square that stops", answer="Sure, [SEG].")
    assert out["has_seg"] and out["masks"].shape == (3, 40, 50)


def test_bad_inputs_name_the_problem(model, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        predict_image(model, tmp_path / "missing.jpg", "the dog")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    with pytest.raises(OSError, match="broken.jpg"):
        predict_image(model, broken, "the dog")
    with pytest.raises(ValueError, match="empty"):
        predict_image(model, picture(), "")
    with pytest.raises(ValueError, match="no frames"):
        predict_video(model, [], "the dog")
