"""The whole Sa2VA-MBA model on tiny configs: loss path for image and video batches."""

from pathlib import Path

import pytest
import torch

from mpr_cma.datasets import encode_referring, sa2va_collate, sentence_ids
from mpr_cma.engine.config import load_config
from mpr_cma.models import Sa2VAMBA
from mpr_cma.registry import MODELS

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
EXPRESSIONS = ["the red circle", "the square on the left", "the small blue triangle"]


def build(name: str, seed: int = 0) -> Sa2VAMBA:
    torch.manual_seed(seed)
    return MODELS.build(load_config(CONFIGS / "tiny" / name).model)


def make_batch(model: Sa2VAMBA, frames=(1, 3), objects=(2, 1), seed=0) -> dict:
    """An image sample (2 objects) and a 3-frame video sample (1 object), built by the real
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
                top, left = 5 + 4 * j + t, 6 + 7 * j
                m[j, t, top:top + 15, left:left + 20] = True
        samples.append({"input_ids": torch.tensor(enc.input_ids),
                        "labels": torch.tensor(enc.labels),
                        "pixel_values": torch.randn(f, 3, tile, tile, generator=g),
                        "g_pixel_values": torch.randn(f, 3, 64, 64, generator=g),
                        "masks": m, "expression_spans": enc.expression_spans,
                        "sentence_ids": sentence_ids(enc.expressions)})
    batch = sa2va_collate(samples, model.tokenizer.pad_token_id)["data"]
    return {k: batch[k] for k in ("input_ids", "labels", "attention_mask", "pixel_values",
                                  "image_flags", "g_pixel_values", "masks",
                                  "expression_spans", "sentence_ids")}


@pytest.fixture(scope="module")
def mba_model():
    return build("sa2va_mba_tiny.py")


def test_image_and_video_batch_forward_backward(mba_model):
    model = mba_model
    model.zero_grad()
    with torch.no_grad():
        model.grounding.mba.gamma.fill_(0.3)
    losses = model(make_batch(model), mode="loss")
    assert set(losses) == {"loss_llm", "loss_mask", "loss_dice", "loss_tmc", "loss_bound"}
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    sum(losses.values()).backward()
    named = dict(model.named_parameters())
    for name in ["text_hidden_fcs.0.weight", "text_token_fcs.2.weight",
                 "grounding.mba.gamma", "grounding.mba.router.mlp.0.weight",
                 "grounding.sam2_model.sam_mask_decoder.transformer.layers.0.mlp.layers.0.weight",
                 "mllm.mlp1.1.weight"]:
        grad = named[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert named["mllm.vision_model.embeddings.patch_embedding.weight"].grad is None
    assert named["grounding.sam2_model.image_encoder.trunk.patch_embed.proj.weight"].grad is None
    with torch.no_grad():
        model.grounding.mba.gamma.zero_()


def test_mask_loss_reaches_text_hidden_fcs_and_lora(mba_model):
    model = mba_model
    model.zero_grad()
    losses = model(make_batch(model), mode="loss")
    (losses["loss_mask"] + losses["loss_dice"]).backward()
    named = dict(model.named_parameters())
    assert named["text_hidden_fcs.2.weight"].grad.abs().sum() > 0
    lora_b = [p for n, p in named.items() if "lora_B" in n]
    assert lora_b and all(p.requires_grad for p in lora_b)
    # lora_B starts at 0, so lora_A receives no gradient yet; lora_B does.
    assert sum(p.grad.abs().sum() for p in lora_b if p.grad is not None) > 0


def test_grounding_rows_follow_objects_and_frames(mba_model):
    run = mba_model.run_batch(make_batch(mba_model))
    # image: 2 objects x 1 frame; video: 1 object x 3 frames
    assert run["rows"]["object"].tolist() == [0, 1, 2, 2, 2]
    assert run["rows"]["frame"].tolist() == [0, 0, 1, 2, 3]
    assert run["grounding"]["pred_masks"].shape == (5, 1, 16, 16)


def test_mba_disabled_equals_baseline_with_the_same_weights(mba_model):
    baseline = build("sa2va_baseline_tiny.py", seed=1)
    missing, unexpected = baseline.load_state_dict(mba_model.state_dict(), strict=False)
    assert not missing
    assert all(k.startswith(("grounding.mba.", "text_token_fcs.", "criterion.tmc."))
               for k in unexpected)
    batch = make_batch(mba_model)
    with torch.no_grad():
        mba_model.grounding.mba.gamma.fill_(0.5)
        mba_masks = mba_model.run_batch(batch)["grounding"]["pred_masks"]
        base_masks = baseline.run_batch(batch)["grounding"]["pred_masks"]
        assert not torch.equal(mba_masks, base_masks)  # MBA on: a different result
        mba_module, mba_model.grounding.mba = mba_model.grounding.mba, None
        try:
            disabled = mba_model.run_batch(batch)["grounding"]["pred_masks"]
        finally:
            mba_model.grounding.mba = mba_module
            mba_model.grounding.mba.gamma.zero_()
    assert torch.equal(disabled, base_masks)


def test_ground_truth_rows_are_nearest_samples_of_each_mask():
    """Sa2VA (models/sa2va.py forward): F.interpolate(gt, size=pred size, mode='nearest'),
    PyTorch's nearest rule: output pixel i reads input pixel floor(i * in / out)."""
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(2, 5, 7, generator=gen) > 0.5          # (O, H, W): 2 objects
    video = torch.rand(1, 3, 6, 9, generator=gen) > 0.5       # (O, F, H, W): 3 frames
    rows = Sa2VAMBA._ground_truth_rows([image, video], (4, 4))
    # 5 -> 4 rows: floor(i * 1.25) = 0, 1, 2, 3; 7 -> 4 columns: floor(j * 1.75) = 0, 1, 3, 5
    want = image[:, [0, 1, 2, 3]][:, :, [0, 1, 3, 5]].float()
    assert torch.equal(rows[0], want)
    # 6 -> 4: 0, 1, 3, 4; 9 -> 4: floor(j * 2.25) = 0, 2, 4, 6; rows in (object, frame) order
    want = video[0][:, [0, 1, 3, 4]][:, :, [0, 2, 4, 6]].float()
    assert torch.equal(rows[1], want)
    with pytest.raises(ValueError, match=r"masks\[0\] must be"):
        Sa2VAMBA._ground_truth_rows([torch.zeros(5, 7, dtype=torch.bool)], (4, 4))


@pytest.mark.parametrize("size", ["pred", "input"])
def test_loss_ground_truth_size(mba_model, monkeypatch, size):
    """'pred' (Sa2VA): the criterion gets the GT on the 16 x 16 grid of the tiny model's
    low-res logits; 'input': on SAM-2's 64 x 64 input (the tiny configs)."""
    seen = []
    forward = type(mba_model.criterion).forward

    def record(self, pred_logits, gt_masks, **kw):
        seen.append((tuple(pred_logits.shape), gt_masks.clone()))
        return forward(self, pred_logits, gt_masks, **kw)

    monkeypatch.setattr(type(mba_model.criterion), "forward", record)
    monkeypatch.setattr(mba_model, "gt_mask_size", size)
    batch = make_batch(mba_model)
    with torch.no_grad():
        mba_model(batch, mode="loss")
    (pred_shape, gt), = seen
    grid = {"pred": 16, "input": 64}[size]
    assert pred_shape == (5, 16, 16) and gt.shape == (5, grid, grid)
    # the image's first object, 40 x 50 -> grid x grid by the nearest rule
    rows = [int(i * 40 / grid) for i in range(grid)]
    cols = [int(j * 50 / grid) for j in range(grid)]
    assert torch.equal(gt[0], batch["masks"][0][0, 0][rows][:, cols].float())


def test_gt_mask_size_is_checked():
    cfg = load_config(CONFIGS / "tiny" / "sa2va_baseline_tiny.py")
    with pytest.raises(ValueError, match="gt_mask_size must be one of"):
        MODELS.build(dict(cfg.model, gt_mask_size="full"))


def test_chat_only_batch_and_bad_batches(mba_model):
    batch = make_batch(mba_model)
    chat = {k: batch[k] for k in ("input_ids", "labels", "attention_mask", "pixel_values")}
    chat["input_ids"] = chat["input_ids"].masked_fill(
        chat["input_ids"] == mba_model.seg_token_id, mba_model.tokenizer.pad_token_id)
    mba_model.zero_grad()
    sum(mba_model(batch, mode="loss").values()).backward()
    with_objects = {n for n, p in mba_model.named_parameters() if p.grad is not None}
    mba_model.zero_grad()
    losses = mba_model(chat, mode="loss")
    assert set(losses) == {"loss_llm", "loss_mask", "loss_dice", "loss_tmc", "loss_bound"}
    assert all(losses[k].item() == 0.0 for k in losses if k != "loss_llm")
    assert torch.isfinite(losses["loss_llm"])
    sum(losses.values()).backward()
    # A placeholder object keeps every trainable parameter in the graph (zero gradient),
    # so DeepSpeed's reduction and TMC's gather see the same parameters on every rank.
    chat_grads = {n for n, p in mba_model.named_parameters() if p.grad is not None}
    assert chat_grads == with_objects, sorted(chat_grads ^ with_objects)[:5]
    wrong = dict(batch, masks=[batch["masks"][0][:1], batch["masks"][1]])
    with pytest.raises(ValueError, match=r"sample 0: 2 \[SEG\] tokens in input_ids but 1 objects"):
        mba_model(wrong, mode="loss")
    wrong = dict(batch, expression_spans=[[(0, 0), (1, 2)], batch["expression_spans"][1]])
    with pytest.raises(ValueError, match="expression span"):
        mba_model(wrong, mode="loss")
    with pytest.raises(ValueError, match="mode='loss'"):
        mba_model(batch, mode="predict")


def test_1b_model_builds_on_meta_device():
    cfg = load_config(CONFIGS / "_base_" / "models" / "sa2va_mba_1b.py")
    cfg.model.update(mllm_pretrained=None, tokenizer="tiny")
    cfg.model.grounding.ckpt_path = None
    with torch.device("meta"):
        model = MODELS.build(cfg.model)
    assert next(model.parameters()).device.type == "meta"
    assert model.grounding.hidden_dim == 256 and model.mllm.llm_config.hidden_size == 896
    assert model.grounding.mba.dim == 256 and model.criterion.tmc.visual_proj[0].in_features == 256
    assert model.gt_mask_size == "pred"   # Sa2VA's loss grid


def test_tiny_model_builds_on_meta_device_and_counts_like_the_real_one():
    # The tiny tokenizer adds rows to the tiny LLM's vocabulary; on meta they cannot be
    # initialised from the old rows' statistics (transformers' default), which must not
    # stop scripts/count_params.py.
    cfg = load_config(CONFIGS / "tiny" / "demo.py")
    with torch.device("meta"):
        meta = MODELS.build(cfg.model)
    torch.manual_seed(0)
    real = MODELS.build(cfg.model)
    count = [sum(p.numel() for p in m.parameters()) for m in (meta, real)]
    trainable = [sum(p.numel() for p in m.parameters() if p.requires_grad)
                 for m in (meta, real)]
    assert count[0] == count[1] and trainable[0] == trainable[1]
    sam = real.grounding.sam2_model
    assert all(p.requires_grad for p in sam.image_encoder.parameters())  # the demo recipe
    assert all(p.requires_grad for p in real.mllm.vision_model.parameters())


def test_prompt_init_gain_scales_the_initial_prompts():
    cfg = load_config(CONFIGS / "tiny" / "sa2va_mba_tiny.py")
    torch.manual_seed(0)
    default = MODELS.build(cfg.model)
    torch.manual_seed(0)
    scaled = MODELS.build({**cfg.model, "prompt_init_gain": 5.0})
    a, b = default.text_hidden_fcs[2], scaled.text_hidden_fcs[2]
    torch.testing.assert_close(b.weight, 5.0 * a.weight)
    assert b.bias.abs().sum() == 0 and a.bias.abs().sum() > 0
    hidden = torch.randn(64, default.mllm.llm_config.hidden_size)
    ratio = scaled.text_hidden_fcs(hidden).std() / default.text_hidden_fcs(hidden).std()
    assert 3.0 < float(ratio) < 6.0   # the bias is zero, so slightly under the gain
