"""Predict path of the tiny model: image and video in, masks of the original size out."""

import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mpr_cma.models.inference import encode_prompt, predict_image, predict_video, seg_indices
from tests.models.test_sa2va import build


@pytest.fixture(scope="module")
def model():
    return build("sa2va_mba_tiny.py")


def picture(h=40, w=50, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


CTX = "<IMG_CONTEXT>"


def test_image_prompt_is_sa2va_refcoco_question_with_the_expression_verbatim(model):
    ids, (start, end) = encode_prompt(model.tokenizer, "The  red circle.", 8)
    assert model.tokenizer.decode(ids) == (
        "<|im_start|>user\n<img>" + CTX * 8 + "</img>\n Please segment The  red circle. in "
        "this image.<|im_end|>\n<|im_start|>assistant\n")
    # the tokens holding the expression's characters (a lone space token before it is not)
    assert model.tokenizer.decode(ids[start:end]).lstrip() == "The  red circle."
    assert model.tokenizer.decode(ids[:start]).rstrip().endswith("Please segment")
    assert model.tokenizer.decode(ids[end:]).startswith(" in this image.")
    assert ids == model.tokenizer.encode(model.tokenizer.decode(ids))  # one-text tokenization
    with pytest.raises(ValueError, match="empty"):
        encode_prompt(model.tokenizer, "   ", 8)
    with pytest.raises(ValueError, match="SEG"):
        encode_prompt(model.tokenizer, "the [SEG] dog", 8)


def test_video_prompts_are_sa2va_refvos_questions(model):
    ids, (start, end) = encode_prompt(model.tokenizer, "The square that stops.", 8, 2,
                                      video=True)
    block = "<img>" + CTX * 4 + "</img>"
    assert model.tokenizer.decode(ids) == (
        f"<|im_start|>user\n{block}\n{block}\nPlease segment The square that stops.."
        "<|im_end|>\n<|im_start|>assistant\n")  # verbatim: its "." and the template's
    assert model.tokenizer.decode(ids[start:end]).lstrip() == "The square that stops."
    ids, (start, end) = encode_prompt(model.tokenizer, "Which square stops?", 4, 1, video=True)
    assert model.tokenizer.decode(ids) == (
        f"<|im_start|>user\n{block}\n Which square stops? Please respond with a "
        "segmentation mask.<|im_end|>\n<|im_start|>assistant\n")
    assert model.tokenizer.decode(ids[start:end]).lstrip() == "Which square stops?"


def test_seg_tokens_used_follow_sa2va_lookup():
    seg = 7
    assert seg_indices([1, seg, 2, seg, 3], seg, stopped=True) == [1, 3]
    # budget exhausted: Sa2VA drops the sequence's last token before looking for [SEG]
    assert seg_indices([1, seg, 2, seg], seg, stopped=False) == [1]
    assert seg_indices([1, 2], seg) == []


def test_sa2va_generation_budget():
    for fn in (predict_image, predict_video):
        assert inspect.signature(fn).parameters["max_new_tokens"].default == 2048


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
    assert out["prompted"] == [0, 1, 2]


def test_video_follows_sa2va_frame_rule(model, monkeypatch):
    """7 frames: the MLLM sees frames 0-4, SAM-2 is prompted on them without memory and
    tracks 5 and 6 by memory alone; the first [SEG] of the answer is the one used."""
    frames = [picture(seed=t) for t in range(7)]
    sam = model.grounding.sam2_model
    seen, heads = [], sam._forward_sam_heads

    def spy(*args, language_embd=None, **kw):
        seen.append(None if language_embd is None else language_embd.shape[0])
        return heads(*args, language_embd=language_embd, **kw)

    monkeypatch.setattr(sam, "_forward_sam_heads", spy)
    out = predict_video(model, frames, "the square that stops", answer="[SEG] and [SEG].")
    assert out["masks"].shape == (7, 40, 50) and out["num_seg"] == 1
    assert out["prompted"] == [0, 1, 2, 3, 4] == out["mba_frames"]
    assert seen == [1, 1] * 5 + [None, None]  # one object; two passes on prompted frames
    monkeypatch.setattr(model.grounding, "video_prompt", "all_frames")
    seen.clear()
    old = predict_video(model, frames, "the square that stops", answer="Sure, [SEG].")
    assert old["prompted"] == list(range(7)) and seen == [1, 1] * 7


def test_image_mask_is_the_union_of_every_seg(model, monkeypatch):
    """RefCOCO (Sa2VA's eval): every [SEG] of the answer is segmented and the masks are
    OR-ed; each mask is its logits resized 4h x 4w -> S x S -> H x W, sigmoid > 0.5."""
    grounding = model.grounding
    rows, segment = [], grounding.segment_images

    def spy(*args, **kw):
        out = segment(*args, **kw)
        rows.append(out["pred_masks"][:, 0].detach().clone())
        return out

    monkeypatch.setattr(grounding, "segment_images", spy)
    image = picture()
    out = predict_image(model, image, "the red circle", answer="[SEG] and [SEG].")
    (low,) = rows
    assert low.shape[0] == 2 and out["num_seg"] == 2
    assert not torch.equal(low[0], low[1])  # two [SEG] hidden states, two masks
    resized = F.interpolate(F.interpolate(low[:, None], size=(64, 64), mode="bilinear",
                                          align_corners=False),
                            size=(40, 50), mode="bilinear", align_corners=False)[:, 0]
    per_seg = (resized.sigmoid() > 0.5).numpy()
    assert per_seg[0].sum() != per_seg[1].sum() or (per_seg[0] != per_seg[1]).any()
    np.testing.assert_array_equal(out["mask"], per_seg[0] | per_seg[1])
    first = predict_image(model, image, "the red circle", answer="[SEG] and [SEG].",
                          combine="first")
    np.testing.assert_array_equal(first["mask"], per_seg[0])


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
