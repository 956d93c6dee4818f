"""SpatioTemporalMBA inside the model: the project's configs, the training rows of a video
batch (one object's frames as one track), the two-pass grounding and the losses, and the
Sa2VA video rule at inference (key frames prompted jointly, the rest tracked)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mpr_cma.datasets import encode_referring, sa2va_collate, sentence_ids
from mpr_cma.engine.config import load_config
from mpr_cma.models import MaskBiasedAttention
from mpr_cma.models.grounding import SAM2Grounding, tiny_sam2_overrides
from mpr_cma.models.inference import predict_video
from mpr_cma.registry import MODELS
from projects.st_mba.st_mba import SpatioTemporalMBA

ROOT = Path(__file__).resolve().parents[3]
PROJECT = ROOT / "projects" / "st_mba" / "configs"
VARIANTS = {"st_mba": {"track_attention": True, "temporal_mix": 0.5},
            "st_mba_prior": {"track_attention": False, "temporal_mix": 0.5},
            "st_mba_track": {"track_attention": True, "temporal_mix": 0.0}}
EXPRESSIONS = ["the red circle", "the square on the left", "the small blue triangle"]


def build(config: Path, seed: int = 0, options=None):
    torch.manual_seed(seed)
    return MODELS.build(load_config(config, options).model)


def make_batch(model, frames=(1, 3), objects=(2, 1), seed=0) -> dict:
    """An image sample (2 objects) and a 3-frame video sample (1 object), through the real
    conversation encoder and collate."""
    g = torch.Generator().manual_seed(seed)
    tile = model.mllm.vision_model.image_size
    samples = []
    for f, o in zip(frames, objects, strict=True):
        enc = encode_referring(model.tokenizer, EXPRESSIONS[:o],
                               f * model.mllm.num_image_token, f)
        m = torch.zeros(o, f, 40, 50, dtype=torch.bool)
        for j in range(o):
            for t in range(f):
                m[j, t, 5 + 4 * j + 3 * t:20 + 4 * j + 3 * t, 6 + 7 * j:26 + 7 * j] = True
        samples.append({"input_ids": torch.tensor(enc.input_ids),
                        "labels": torch.tensor(enc.labels),
                        "pixel_values": torch.randn(f, 3, tile, tile, generator=g),
                        "g_pixel_values": torch.randn(f, 3, 64, 64, generator=g),
                        "masks": m, "expression_spans": enc.expression_spans,
                        "sentence_ids": sentence_ids(enc.expressions)})
    return sa2va_collate(samples, model.tokenizer.pad_token_id)["data"]


@pytest.fixture(scope="module")
def st_model():
    return build(PROJECT / "st_mba_tiny.py")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("size", ["1b", "tiny", "demo"])
def test_every_leaf_loads_its_variant(variant, size):
    cfg = load_config(PROJECT / f"{variant}_{size}.py")
    assert cfg.custom_imports.imports == ["projects.st_mba.st_mba"]
    mba = cfg.model.grounding.mba
    assert mba.type == "SpatioTemporalMBA" and mba.window == 3
    assert {k: mba[k] for k in VARIANTS[variant]} == VARIANTS[variant]
    # The paper's MBA knobs are the base's, and stay live through --cfg-options.
    assert (mba.top_k, mba.tau_gate) == (4, 1.0)
    moved = load_config(PROJECT / f"{variant}_{size}.py", ["mba.window=5", "mba.top_k=2"])
    assert (moved.model.grounding.mba.window, moved.model.grounding.mba.top_k) == (5, 2)


def test_1b_leaf_builds_on_meta_device():
    cfg = load_config(PROJECT / "st_mba_1b.py")
    cfg.model.update(mllm_pretrained=None, tokenizer="tiny")
    cfg.model.grounding.ckpt_path = None
    with torch.device("meta"):
        model = MODELS.build(cfg.model)
    mba = model.grounding.mba
    assert isinstance(mba, SpatioTemporalMBA) and mba.dim == 256
    assert mba.track_attn.dim == 256 and mba.track_attn.router is None


def test_training_rows_of_a_video_are_one_track(st_model, monkeypatch):
    seen = {}
    forward = SpatioTemporalMBA.forward

    def spy(self, *args, track_index=None, **kwargs):
        seen["track_index"] = track_index
        return forward(self, *args, track_index=track_index, **kwargs)

    monkeypatch.setattr(SpatioTemporalMBA, "forward", spy)
    with torch.no_grad():
        st_model.run_batch(make_batch(st_model))
    # image: objects 0 and 1 (one frame each); video: object 2 on 3 frames, in frame order.
    assert seen["track_index"].tolist() == [0, 1, 2, 2, 2]


def test_loss_trains_the_temporal_parameters(st_model):
    model = st_model
    model.zero_grad()
    with torch.no_grad():
        model.grounding.mba.gamma.fill_(0.3)
        model.grounding.mba.track_attn.gamma.fill_(0.3)
    try:
        losses = model(make_batch(model), mode="loss")
        assert set(losses) == {"loss_llm", "loss_mask", "loss_dice", "loss_tmc", "loss_bound"}
        sum(losses.values()).backward()
    finally:
        with torch.no_grad():
            model.grounding.mba.gamma.zero_()
            model.grounding.mba.track_attn.gamma.zero_()
    named = dict(model.named_parameters())
    for name in ["grounding.mba.track_attn.gamma", "grounding.mba.track_attn.k_proj.weight",
                 "grounding.mba.track_attn.out_proj.weight", "grounding.mba.gamma",
                 "grounding.mba.router.mlp.0.weight", "text_token_fcs.2.weight",
                 "grounding.sam2_model.sam_mask_decoder.transformer.layers.0.mlp.layers.0.weight"]:
        grad = named[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_window_one_model_equals_the_per_frame_mba_model(st_model):
    per_frame = build(ROOT / "configs" / "tiny" / "sa2va_mba_tiny.py", seed=1)
    window_one = build(PROJECT / "st_mba_tiny.py", seed=2, options=["mba.window=1"])
    state = st_model.state_dict()
    for model in (per_frame, window_one):
        result = model.load_state_dict(state, strict=False)
        assert not result.missing_keys
        assert all(k.startswith("grounding.mba.track_attn.") for k in result.unexpected_keys)
        with torch.no_grad():
            model.grounding.mba.gamma.fill_(0.5)
    batch = make_batch(st_model)
    with torch.no_grad():
        a = per_frame.run_batch(batch)["grounding"]
        b = window_one.run_batch(batch)["grounding"]
    assert torch.equal(a["pred_masks"], b["pred_masks"])
    assert torch.equal(a["decoder_features"], b["decoder_features"])


# ---------------------------------------------------------------------- video inference
DIM = 32


def grounding(mba, seed=0):
    torch.manual_seed(seed)
    model = SAM2Grounding(image_size=64, hydra_overrides=tiny_sam2_overrides(DIM), mba=mba)
    with torch.no_grad():  # object present, so the tests see real logits (see mpr_cma tests)
        model.sam2_model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(20.0)
    return model.eval()


def video_inputs(frames=7, objects=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (frames, 3, 48, 80), dtype=torch.uint8, generator=g)
    prompt = torch.randn(objects, 1, DIM, generator=g)
    text = torch.randn(objects, 5, DIM, generator=g)
    return images, prompt, text, torch.ones(objects, 5, dtype=torch.bool)


def segment(model, frames=7):
    images, prompt, text, mask = video_inputs(frames)
    with torch.no_grad():
        feats = model.encode(model.preprocess(images, video=True))
        keys, tracked = model.video_plan(list(range(min(5, frames))))
        return model.segment_video(feats, prompt, keys, text, mask, prompt_tracked=tracked)


def st_and_mba(window):
    torch.manual_seed(0)
    st = SpatioTemporalMBA(dim=DIM, num_heads=4, top_k=3, window=window)
    mba = MaskBiasedAttention(dim=DIM, num_heads=4, top_k=3)
    mba.load_state_dict(st.state_dict(), strict=False)
    with torch.no_grad():
        for m in (st, mba):
            m.gamma.fill_(0.5)
        if st.track_attn is not None:
            st.track_attn.gamma.fill_(0.5)
    return grounding(st), grounding(mba)


def test_video_key_frames_are_one_track_per_object(monkeypatch):
    st, _ = st_and_mba(window=3)
    calls = []
    forward = SpatioTemporalMBA.forward

    def spy(self, visual, *args, track_index=None, **kwargs):
        calls.append((visual.shape[0], None if track_index is None else track_index.tolist()))
        return forward(self, visual, *args, track_index=track_index, **kwargs)

    monkeypatch.setattr(SpatioTemporalMBA, "forward", spy)
    out = segment(st)
    # One call for the 5 key frames of both objects, rows in (object, frame) order; the two
    # tracked frames are plain SAM-2 tracking (Sa2VA's rule), MBA does not run on them.
    assert calls == [(10, [0] * 5 + [1] * 5)]
    assert out["prompted"] == [0, 1, 2, 3, 4] and out["mba_frames"] == [0, 1, 2, 3, 4]
    assert out["pred_masks"].shape == (2, 7, 16, 16)


def test_video_window_one_equals_per_frame_mba_and_window_three_differs():
    st1, mba = st_and_mba(window=1)
    ref = segment(mba)
    one = segment(st1)
    # The joint key-frame decode batches rows that the per-frame loop decodes one frame at
    # a time: equal up to float summation order.
    for key in ("pred_masks", "pred_masks_pass1", "object_score_logits"):
        torch.testing.assert_close(one[key], ref[key], rtol=1e-4, atol=1e-4)
    st3, _ = st_and_mba(window=3)
    three = segment(st3)
    torch.testing.assert_close(three["pred_masks_pass1"], ref["pred_masks_pass1"], rtol=1e-4,
                               atol=1e-4)  # pass 1 is SAM-2's own
    assert (three["pred_masks"][:, :5] - ref["pred_masks"][:, :5]).abs().max() > 1e-3


def test_predict_video_runs_the_sa2va_rule(st_model):
    rng = np.random.default_rng(0)
    frames = [Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8))
              for _ in range(7)]
    out = predict_video(st_model, frames, "the red circle", answer="It is [SEG].")
    assert out["has_seg"] and out["masks"].shape == (7, 40, 56)
    assert out["prompted"] == [0, 1, 2, 3, 4] and out["mba_frames"] == [0, 1, 2, 3, 4]
