"""Behaviour of MaskBiasedAttention (eqs. 1-4) and its FiLM variant."""

import math

import pytest
import torch
import torch.nn.functional as F

from mpr_cma.models import MaskBiasedAttention, MaskBiasedFiLM, TopKTextRouter
from mpr_cma.registry import MODELS

DIM, HEADS = 32, 4
VARIANTS = [MaskBiasedAttention, MaskBiasedFiLM]


def make_inputs(b=3, n=6, h=8, w=8, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    visual = torch.randn(b, DIM, h, w, generator=g).to(dtype)
    text = torch.randn(b, n, DIM, generator=g).to(dtype)
    mask_logits = 3 * torch.randn(b, 1, 2 * h, 2 * w, generator=g)
    text_mask = torch.ones(b, n, dtype=torch.bool)
    text_mask[0, 4:] = False  # sample 0 has 4 real tokens and 2 padding
    return visual, text, mask_logits, text_mask


def make_module(cls=MaskBiasedAttention, gamma=0.5, seed=0, **kwargs):
    torch.manual_seed(seed)
    kwargs.setdefault("top_k", 3)
    module = cls(dim=DIM, num_heads=HEADS, **kwargs)
    with torch.no_grad():
        module.gamma.fill_(gamma)
    return module


def naive_reference(module, visual, text, mask_logits, text_mask):
    """Eqs. (1)-(4) written the textbook way: project every pixel, per-head softmax."""
    b, c, h, w = visual.shape
    text_n = module.norm_text(text)
    scores = module.router.mlp(text_n).squeeze(-1)
    k = min(module.router.top_k, text.shape[1])
    index = scores.masked_fill(~text_mask, float("-inf")).topk(k, dim=1).indices
    valid = text_mask.gather(1, index)
    kept = text_n.gather(1, index[..., None].expand(-1, -1, c))
    kept = kept * torch.sigmoid(scores.gather(1, index))[..., None]
    x = visual.flatten(2).transpose(1, 2)
    q = module.q_proj(module.norm_visual(x)).view(b, -1, HEADS, c // HEADS).transpose(1, 2)
    key = module.k_proj(kept).view(b, k, HEADS, c // HEADS).transpose(1, 2)
    val = module.v_proj(kept).view(b, k, HEADS, c // HEADS).transpose(1, 2)
    logits = q @ key.transpose(-1, -2) / math.sqrt(c // HEADS)
    logits = logits.masked_fill(~valid[:, None, None, :], float("-inf"))
    attn = (logits.softmax(-1) @ val).transpose(1, 2).reshape(b, -1, c)
    o_attn = module.out_proj(attn)
    if isinstance(module, MaskBiasedFiLM):
        a, bias = module.film(o_attn).split(c, dim=-1)
        o_attn = a * x + bias
    gate = torch.sigmoid(F.interpolate(mask_logits, size=(h, w), mode="bilinear") /
                         module.tau_gate).flatten(2).transpose(1, 2)
    out = x + module.gamma * (o_attn * gate)
    return out.transpose(1, 2).reshape(b, c, h, w)


@pytest.mark.parametrize("cls", VARIANTS)
def test_matches_textbook_attention(cls):
    module = make_module(cls, tau_gate=0.7)
    visual, text, mask_logits, text_mask = make_inputs()
    expected = naive_reference(module, visual, text, mask_logits, text_mask)
    torch.testing.assert_close(module(visual, text, mask_logits, text_mask), expected,
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls", VARIANTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gamma_zero_returns_input_exactly(cls, dtype):
    module = make_module(cls, gamma=0.0)
    visual, text, mask_logits, text_mask = make_inputs(dtype=dtype)
    out = module(visual, text, mask_logits, text_mask)
    assert out.dtype == dtype
    assert torch.equal(out, visual)


@pytest.mark.parametrize("cls", VARIANTS)
@pytest.mark.parametrize("gamma", [0.3, -2.0, 50.0])
def test_closed_gate_returns_input_for_any_gamma(cls, gamma):
    module = make_module(cls, gamma=gamma)
    visual, text, _, text_mask = make_inputs()
    closed = torch.full((visual.shape[0], 1, 5, 7), -1e4)
    assert torch.equal(module(visual, text, closed, text_mask), visual)


def test_warmup_scale_multiplies_gamma():
    module = make_module(gamma=0.8)
    visual, text, mask_logits, text_mask = make_inputs()
    full = module(visual, text, mask_logits, text_mask)
    module.set_warmup_scale(0.0)
    assert torch.equal(module(visual, text, mask_logits, text_mask), visual)
    module.set_warmup_scale(0.25)
    quarter = module(visual, text, mask_logits, text_mask)
    torch.testing.assert_close(quarter - visual, 0.25 * (full - visual), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="warmup scale"):
        module.set_warmup_scale(1.5)
    assert "warmup_scale" not in module.state_dict()


@pytest.mark.parametrize("cls", VARIANTS)
def test_router_attention_and_gamma_get_gradients(cls):
    visual, text, mask_logits, text_mask = make_inputs()
    visual.requires_grad_(True)
    # gamma = 0 (the initial state): gamma itself receives a gradient.
    module = make_module(cls, gamma=0.0)
    module(visual, text, mask_logits, text_mask).square().sum().backward()
    assert module.gamma.grad.abs().item() > 0
    # gamma != 0: the router, the attention projections and the value path all learn.
    module = make_module(cls, gamma=0.5)
    module(visual, text, mask_logits, text_mask).square().sum().backward()
    grads = {n: p.grad for n, p in module.named_parameters()}
    for name in ["router.mlp.0.weight", "router.mlp.2.weight", "q_proj.weight",
                 "k_proj.weight", "v_proj.weight", "out_proj.weight", "gamma"]:
        assert grads[name] is not None and grads[name].abs().sum() > 0, name


@pytest.mark.parametrize("cls", VARIANTS)
def test_padding_never_changes_output(cls):
    module = make_module(cls)
    visual, text, mask_logits, text_mask = make_inputs()
    reference = module(visual, text, mask_logits, text_mask)
    poisoned = text.clone()
    poisoned[~text_mask] = 1e6  # would dominate any router score if it were ranked
    torch.testing.assert_close(module(visual, poisoned, mask_logits, text_mask), reference)
    # Appending padding tokens changes nothing either.
    extra = torch.randn(text.shape[0], 3, DIM)
    longer = torch.cat([text, extra], dim=1)
    longer_mask = torch.cat([text_mask, torch.zeros(text.shape[0], 3, dtype=torch.bool)], 1)
    torch.testing.assert_close(module(visual, longer, mask_logits, longer_mask), reference)


def test_padding_is_never_selected_and_small_texts_keep_all_tokens():
    module = make_module(top_k=5)
    visual, text, mask_logits, text_mask = make_inputs()  # sample 0: 4 real tokens
    _, info = module(visual, text, mask_logits, text_mask, return_attention=True)
    index, valid = info["token_index"], info["token_valid"]
    assert valid[0].sum() == 4 and valid[1].sum() == 5
    assert sorted(index[0][valid[0]].tolist()) == [0, 1, 2, 3]
    assert text_mask.gather(1, index)[valid].all()
    # With K below the number of real tokens, the K best-scored ones are kept.
    module = make_module(top_k=2)
    _, info = module(visual, text, mask_logits, text_mask, return_attention=True)
    scores = info["router_scores"].masked_fill(~text_mask, float("-inf"))
    expected = scores.topk(2, dim=1).indices.sort(dim=1).values
    assert torch.equal(info["token_index"].sort(dim=1).values, expected)


@pytest.mark.parametrize("cls", VARIANTS)
def test_all_padding_sample_is_returned_unchanged(cls):
    module = make_module(cls)
    visual, text, mask_logits, text_mask = make_inputs()
    text_mask[1] = False
    out = module(visual, text, mask_logits, text_mask)
    assert torch.equal(out[1], visual[1])
    assert not torch.equal(out[0], visual[0])


def test_attention_maps_for_visualisation():
    module = make_module(top_k=3)
    visual, text, mask_logits, text_mask = make_inputs(h=8, w=6)
    _, info = module(visual, text, mask_logits, text_mask, return_attention=True)
    assert info["attn"].shape == (3, HEADS, 8, 6, 3)
    torch.testing.assert_close(info["attn"].sum(-1), torch.ones(3, HEADS, 8, 6))
    assert info["gate"].shape == (3, 1, 8, 6)
    torch.testing.assert_close(info["attn_gated"], info["attn"] * info["gate"][..., None])


def test_ungated_variant_and_no_router():
    visual, text, mask_logits, text_mask = make_inputs()
    ungated = make_module(use_mask_gate=False)
    closed = torch.full_like(mask_logits, -1e4)
    assert not torch.equal(ungated(visual, text, closed, text_mask), visual)
    all_tokens = make_module(top_k=None)
    assert all_tokens.router is None
    _, info = all_tokens(visual, text, mask_logits, text_mask, return_attention=True)
    assert torch.equal(info["token_valid"], text_mask)


def test_mask_logits_rank_three_equals_rank_four():
    module = make_module()
    visual, text, mask_logits, text_mask = make_inputs()
    torch.testing.assert_close(module(visual, text, mask_logits[:, 0], text_mask),
                               module(visual, text, mask_logits, text_mask))


@pytest.mark.parametrize("cls", VARIANTS)
def test_bfloat16_inputs_and_parameters(cls):
    module = make_module(cls)
    visual, text, mask_logits, text_mask = make_inputs()
    reference = module(visual, text, mask_logits, text_mask)
    out = module(visual.bfloat16(), text.bfloat16(), mask_logits.bfloat16(), text_mask)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), reference, rtol=0.05, atol=0.05)
    module_bf16 = make_module(cls).bfloat16()
    out = module_bf16(visual.bfloat16(), text.bfloat16(), mask_logits.bfloat16(), text_mask)
    out.float().sum().backward()
    assert module_bf16.gamma.grad.dtype == torch.bfloat16
    assert torch.isfinite(module_bf16.q_proj.weight.grad.float()).all()


@pytest.mark.parametrize("cls", VARIANTS)
def test_token_side_is_fp32_inside_bf16_autocast(cls):
    """The docstring's promise holds inside the 1B config's bf16 autocast: router scores and
    attention probabilities come out fp32 and equal the fp32 computation's (the router
    only sees tokens, so its scores are bit-identical; the probabilities differ only by
    the bf16 pixel-by-key product)."""
    module = make_module(cls)
    visual, text, mask_logits, text_mask = make_inputs()
    _, reference = module(visual, text, mask_logits, text_mask, return_attention=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        routed = module._route(text, text_mask)
        out, info = module(visual, text, mask_logits, text_mask, return_attention=True)
    assert routed.scores.dtype == torch.float32 and routed.tokens.dtype == torch.float32
    torch.testing.assert_close(routed.scores, reference["router_scores"], rtol=0, atol=0)
    assert info["router_scores"].dtype == torch.float32
    assert info["attn"].dtype == torch.float32 and info["gate"].dtype == torch.float32
    torch.testing.assert_close(info["gate"], reference["gate"], rtol=0, atol=0)
    torch.testing.assert_close(info["attn"], reference["attn"], rtol=0.05, atol=0.02)
    assert torch.isfinite(out.float()).all()


def test_film_variant_differs_from_mba():
    visual, text, mask_logits, text_mask = make_inputs()
    mba, film = make_module(MaskBiasedAttention), make_module(MaskBiasedFiLM)
    assert "film.weight" in dict(film.named_parameters())
    assert not torch.allclose(mba(visual, text, mask_logits, text_mask),
                              film(visual, text, mask_logits, text_mask))


@pytest.mark.parametrize(
    "case, error, pattern",
    [
        ("visual_rank", ValueError, r"`visual` must be \(B, C=32, H, W\), got \(3, 32, 64\)"),
        ("visual_channels", ValueError, r"`visual` must be .* got \(3, 16, 8, 8\)"),
        ("text_batch", ValueError, r"`text` must be \(B=3, N, C=32\).*got \(2, 6, 32\)"),
        ("text_rank", ValueError, r"`text` must be .*got \(3, 32\)"),
        ("mask_batch", ValueError, r"`mask_logits` must be \(B=3, 1, h, w\).*got \(2, 1, 16, 16\)"),
        ("mask_channels", ValueError, r"`mask_logits` .*got \(3, 2, 16, 16\)"),
        ("text_mask_shape", ValueError, r"`text_mask` must be \(B, N\) = \(3, 6\).*got \(3, 5\)"),
        ("text_mask_dtype", TypeError, r"`text_mask` must be a bool tensor"),
        ("no_tokens", ValueError, r"`text` has no tokens"),
    ],
)
def test_bad_inputs_name_the_argument_and_shapes(case, error, pattern):
    module = make_module()
    visual, text, mask_logits, text_mask = make_inputs()
    if case == "visual_rank":
        visual = visual.flatten(2)
    elif case == "visual_channels":
        visual = visual[:, :16]
    elif case == "text_batch":
        text = text[:2]
    elif case == "text_rank":
        text = text[:, 0]
    elif case == "mask_batch":
        mask_logits = mask_logits[:2]
    elif case == "mask_channels":
        mask_logits = mask_logits.repeat(1, 2, 1, 1)
    elif case == "text_mask_shape":
        text_mask = text_mask[:, :5]
    elif case == "text_mask_dtype":
        text_mask = text_mask.long()
    elif case == "no_tokens":
        text, text_mask = text[:, :0], text_mask[:, :0]
    with pytest.raises(error, match=pattern):
        module(visual, text, mask_logits, text_mask)


def test_constructor_validation_and_registry():
    with pytest.raises(ValueError, match="divisible"):
        MaskBiasedAttention(dim=30, num_heads=4)
    with pytest.raises(ValueError, match="tau_gate"):
        MaskBiasedAttention(dim=32, num_heads=4, tau_gate=0)
    with pytest.raises(ValueError, match="top_k"):
        TopKTextRouter(dim=32, top_k=0)
    built = MODELS.build(dict(type="MaskBiasedAttention", dim=32, num_heads=4, top_k=2))
    assert isinstance(built, MaskBiasedAttention) and built.gamma.item() == 0.0
    assert isinstance(MODELS.build(dict(type="MaskBiasedFiLM", dim=32, num_heads=4)),
                      MaskBiasedFiLM)
