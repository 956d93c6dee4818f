"""Inference encodes each input once (issue 16 item 7): the same outputs, fewer encoder calls.

- one sample: InternViT runs once (generation and the teacher-forced [SEG] pass share it);
- several sentences about one image (`predict_image_sentences`): InternViT and SAM-2's
  image encoder run once for all of them, each result as `predict_image`'s.

The reference `two_encodings_predict_image` is the predict path as it was before the
change, written out from the public pieces: the ViT runs in `embed_inputs` for greedy
decoding and again inside the teacher-forced `model.mllm(full, pixel_values)`.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from mpr_cma.models.grounding.transforms import logits_to_masks
from mpr_cma.models.inference import (
    encode_prompt,
    predict_image,
    predict_image_sentences,
    predict_video,
    seg_indices,
)
from mpr_cma.models.mllm.preprocess import load_image_tiles
from mpr_cma.models.mllm.tokenizer import ENDOFTEXT_TOKEN, IM_END_TOKEN, token_id
from tests.models.test_sa2va import build


@pytest.fixture(scope="module")
def model():
    return build("sa2va_mba_tiny.py").eval()


def picture(h=40, w=50, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


class SegBias:
    """Adds `bonus` to the [SEG] logit of the LM head, so that an untrained model's greedy
    answer is [SEG]... and reaches SAM-2 (removed on exit)."""

    def __init__(self, model, bonus=1e4):
        self.head, self.seg, self.bonus = (model.mllm.language_model.get_output_embeddings(),
                                           model.seg_token_id, bonus)

    def __enter__(self):
        def hook(_module, _inputs, out):
            out = out.clone()
            out[..., self.seg] += self.bonus
            return out
        self.handle = self.head.register_forward_hook(hook)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


class CallCounter:
    """Counts forward calls of a module (a forward hook, removed on exit)."""

    def __init__(self, module):
        self.module, self.calls = module, 0

    def __enter__(self):
        def hook(*_):
            self.calls += 1
        self.handle = self.module.register_forward_hook(hook)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


@torch.no_grad()
def two_encodings_predict_image(model, image, expression, answer=None, max_new_tokens=2048):
    """predict_image before item 7 (combine="union", 12 tiles)."""
    mllm, grounding = model.mllm, model.grounding
    tiles = load_image_tiles(image, max_num=12, image_size=mllm.vision_model.image_size)
    pixels = tiles.to(next(mllm.mlp1.parameters()).dtype)
    array = np.array(image)
    frames = torch.from_numpy(array[None]).permute(0, 3, 1, 2).contiguous()
    h, w = array.shape[:2]
    ids, span = encode_prompt(model.tokenizer, expression,
                              pixels.shape[0] * mllm.num_image_token)
    if answer is None:
        stops = {token_id(model.tokenizer, t) for t in (IM_END_TOKEN, ENDOFTEXT_TOKEN)}
        llm = mllm.language_model
        out = llm(inputs_embeds=mllm.embed_inputs(torch.tensor([ids]), pixels),
                  use_cache=True, return_dict=True)
        new, stopped = [], False
        for _ in range(max_new_tokens):
            next_id = int(out.logits[0, -1].argmax())
            if next_id in stops:
                stopped = True
                break
            new.append(next_id)
            out = llm(input_ids=torch.tensor([[next_id]]), past_key_values=out.past_key_values,
                      use_cache=True, return_dict=True)
    else:
        new, stopped = model.tokenizer.encode(answer, add_special_tokens=False), True
    text = model.tokenizer.decode(new)
    segs = seg_indices(new, model.seg_token_id, stopped)
    if not segs:
        return {"answer": text, "has_seg": False, "mask": np.zeros((h, w), bool),
                "logits": None}
    full = torch.tensor([ids + new[: segs[-1] + 1]])
    out = mllm(full, pixels, output_hidden_states=True)   # the ViT's second run
    text_in = model.object_text(out.hidden_states[-1], full, [len(segs)], [[span] * len(segs)])
    features = grounding.encode(grounding.preprocess(frames, video=False))
    seg = grounding.segment_images(features, torch.zeros(len(segs), dtype=torch.long),
                                   text_in["prompt"], text_in["text"], text_in["text_mask"])
    logits = grounding.upsample_masks(seg["pred_masks"][:, 0][None], (h, w))[0].amax(0)
    return {"answer": text, "has_seg": True, "mask": logits_to_masks(logits).numpy(),
            "logits": logits}


def assert_same(new, ref):
    assert new["answer"] == ref["answer"] and new["has_seg"] == ref["has_seg"]
    assert np.array_equal(new["mask"], ref["mask"])
    if ref["logits"] is None:
        assert new["logits"] is None
    else:
        assert torch.equal(new["logits"], ref["logits"])  # bit-identical, not allclose
    for key in ("num_seg", "attention"):
        if key in ref:
            assert key in new
    for name, value in ref.get("attention", {}).items():
        assert torch.equal(new["attention"][name], value)


@pytest.mark.parametrize("answer", ["It is [SEG].", "[SEG] and [SEG].", "No."])
def test_teacher_forced_image_is_bit_identical_to_two_encodings(model, answer):
    image = picture(seed=1)
    assert_same(predict_image(model, image, "the red circle", answer=answer),
                two_encodings_predict_image(model, image, "the red circle", answer=answer))


def test_greedy_image_is_bit_identical_to_two_encodings(model):
    image = picture(seed=2)
    with SegBias(model):   # greedy answer "[SEG][SEG][SEG]": budget ends, 2 [SEG]s used
        new = predict_image(model, image, "the blue square", max_new_tokens=3)
        ref = two_encodings_predict_image(model, image, "the blue square", max_new_tokens=3)
    assert ref["has_seg"] and ref["answer"].count("[SEG]") == 3
    assert_same(new, ref)
    # and without the bias: whatever the untrained model says, the paths agree
    assert_same(predict_image(model, image, "the blue square", max_new_tokens=3),
                two_encodings_predict_image(model, image, "the blue square", max_new_tokens=3))


def test_vit_runs_once_per_image_sample(model):
    image = picture(seed=3)
    vit = model.mllm.vision_model
    with SegBias(model):
        with CallCounter(vit) as old:
            two_encodings_predict_image(model, image, "the red circle", max_new_tokens=2)
        with CallCounter(vit) as new:
            out = predict_image(model, image, "the red circle", max_new_tokens=2)
    assert out["has_seg"]
    assert (old.calls, new.calls) == (2, 1)


def test_vit_runs_once_per_video_sample(model):
    frames = [picture(seed=t) for t in range(3)]
    with SegBias(model), CallCounter(model.mllm.vision_model) as vit:
        out = predict_video(model, frames, "the square that stops", max_new_tokens=2)
    assert out["has_seg"] and vit.calls == 1


SENTENCES = ["the red circle", "the blue square on the left", "it", "the red circle"]


@pytest.mark.parametrize("kwargs", [
    {"answer": "It is [SEG]."},
    {"answer": "[SEG] and [SEG].", "combine": "first", "return_attention": True},
    {"answer": "No."},
    {"max_new_tokens": 3},
])
def test_sentences_of_one_image_match_per_sentence_calls(model, kwargs):
    image = picture(h=30, w=44, seed=4)
    shared = predict_image_sentences(model, image, SENTENCES, **kwargs)
    assert len(shared) == len(SENTENCES)
    for sentence, out in zip(SENTENCES, shared, strict=True):
        assert_same(out, predict_image(model, image, sentence, **kwargs))


def test_greedy_sentences_of_one_image_match_per_sentence_calls(model):
    image = picture(seed=5)
    with SegBias(model):
        shared = predict_image_sentences(model, image, SENTENCES[:3], max_new_tokens=3)
        single = [predict_image(model, image, s, max_new_tokens=3) for s in SENTENCES[:3]]
    assert all(out["has_seg"] and out["num_seg"] == 2 for out in shared)
    for out, ref in zip(shared, single, strict=True):
        assert_same(out, ref)
    # the sentences do differ: the answer's hidden states depend on the prompt
    assert not torch.equal(shared[0]["logits"], shared[1]["logits"])


def test_sentences_of_one_image_encode_it_once(model):
    image = picture(seed=6)
    vit, sam = model.mllm.vision_model, model.grounding.sam2_model.image_encoder
    with CallCounter(vit) as v, CallCounter(sam) as s:
        predict_image_sentences(model, image, SENTENCES, answer="It is [SEG].")
    assert (v.calls, s.calls) == (1, 1)
    with CallCounter(vit) as v, CallCounter(sam) as s:
        for sentence in SENTENCES:
            predict_image(model, image, sentence, answer="It is [SEG].")
    assert (v.calls, s.calls) == (len(SENTENCES), len(SENTENCES))
    # nothing asks for the encodings: none run
    with CallCounter(vit) as v, CallCounter(sam) as s:
        outs = predict_image_sentences(model, image, SENTENCES, answer="No.")
    assert (v.calls, s.calls) == (0, 0) and not any(o["has_seg"] for o in outs)
    assert predict_image_sentences(model, image, []) == []
    with pytest.raises(ValueError, match="combine"):
        predict_image_sentences(model, image, SENTENCES, combine="mean")
