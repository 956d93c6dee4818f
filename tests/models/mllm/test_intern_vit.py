"""InternViT: checkpoint key names/shapes of InternViT-300M-448px-V2_5, forward semantics."""

import pytest
import torch
import torch.nn.functional as F

from mpr_cma.models.mllm import InternVisionModel, count_parameters, internvl2_5_1b_config
from mpr_cma.models.mllm.configs import tiny_internvl_config

D, MLP, LAYERS = 1024, 4096, 24  # InternViT-300M: width, MLP width, depth
POSITIONS = 1 + (448 // 14) ** 2  # CLS + 32 x 32 patches


def expected_300m_shapes() -> dict[str, tuple[int, ...]]:
    """The documented InternViT-300M state dict (FORMATS.md "Checkpoints"), written out."""
    shapes = {
        "embeddings.class_embedding": (1, 1, D),
        "embeddings.patch_embedding.weight": (D, 3, 14, 14),
        "embeddings.patch_embedding.bias": (D,),
        "embeddings.position_embedding": (1, POSITIONS, D),
    }
    per_layer = {
        "attn.qkv.weight": (3 * D, D),
        "attn.qkv.bias": (3 * D,),
        "attn.proj.weight": (D, D),
        "attn.proj.bias": (D,),
        "ls1": (D,),
        "ls2": (D,),
        "norm1.weight": (D,),
        "norm1.bias": (D,),
        "norm2.weight": (D,),
        "norm2.bias": (D,),
        "mlp.fc1.weight": (MLP, D),
        "mlp.fc1.bias": (MLP,),
        "mlp.fc2.weight": (D, MLP),
        "mlp.fc2.bias": (D,),
    }
    for n in range(LAYERS):
        shapes.update({f"encoder.layers.{n}.{k}": v for k, v in per_layer.items()})
    return shapes


def tiny_vit(**overrides) -> InternVisionModel:
    torch.manual_seed(0)
    kwargs = tiny_internvl_config()["vision"] | overrides
    return InternVisionModel(**kwargs).eval()


def test_300m_state_dict_matches_release_layout():
    with torch.device("meta"):
        vit = InternVisionModel(**internvl2_5_1b_config()["vision"])
    got = {k: tuple(v.shape) for k, v in vit.state_dict().items()}
    expected = expected_300m_shapes()
    assert sorted(got) == sorted(expected)
    assert got == expected
    assert len(got) == 4 + 14 * LAYERS


def test_300m_parameter_count_from_formula():
    with torch.device("meta"):
        vit = InternVisionModel(**internvl2_5_1b_config()["vision"])
    # per layer: qkv 3D^2+3D, proj D^2+D, ls 2D, LayerNorms 4D, fc1 D*MLP+MLP, fc2 D*MLP+D
    per_layer = 4 * D * D + 2 * MLP * D + 11 * D + MLP
    embeddings = D + (3 * 14 * 14 * D + D) + POSITIONS * D
    counts = count_parameters(vit)
    print(f"InternViT-300M parameters: {counts['total']:,}")
    assert counts["total"] == embeddings + LAYERS * per_layer == 304_012_288


def test_300m_architecture_details():
    with torch.device("meta"):
        vit = InternVisionModel(**internvl2_5_1b_config()["vision"])
    layer = vit.encoder.layers[0]
    assert isinstance(layer.norm1, torch.nn.LayerNorm) and layer.norm1.eps == 1e-6
    assert isinstance(layer.mlp.act, torch.nn.GELU) and layer.mlp.act.approximate == "none"
    assert layer.attn.num_heads == 16 and not layer.attn.qk_normalization
    # stochastic depth ramps linearly from 0 to drop_path_rate over the 24 layers
    assert vit.encoder.layers[0].drop_path1.p == 0.0
    assert vit.encoder.layers[-1].drop_path1.p == pytest.approx(0.1)
    assert vit.num_patches == 1024


def reference_layer(layer, x):
    """One InternViT block written with explicit ops (pre-norm, layer scale, exact GELU)."""
    d = x.shape[-1]
    heads = layer.attn.num_heads
    h = F.layer_norm(x, (d,), layer.norm1.weight, layer.norm1.bias, 1e-6)
    qkv = h @ layer.attn.qkv.weight.T + layer.attn.qkv.bias
    q, k, v = (t.reshape(x.shape[0], x.shape[1], heads, d // heads).transpose(1, 2)
               for t in qkv.split(d, dim=-1))
    attn = torch.softmax(q @ k.transpose(-1, -2) / (d // heads) ** 0.5, dim=-1)
    o = (attn @ v).transpose(1, 2).reshape(x.shape)
    x = x + layer.ls1 * (o @ layer.attn.proj.weight.T + layer.attn.proj.bias)
    h = F.layer_norm(x, (d,), layer.norm2.weight, layer.norm2.bias, 1e-6)
    h = F.gelu(h @ layer.mlp.fc1.weight.T + layer.mlp.fc1.bias)
    return x + layer.ls2 * (h @ layer.mlp.fc2.weight.T + layer.mlp.fc2.bias)


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_forward_matches_hand_written_reference(impl):
    vit = tiny_vit(attn_implementation=impl)
    with torch.no_grad():
        for p in vit.parameters():  # non-trivial layer scales and biases
            p.add_(0.05 * torch.randn_like(p))
    pixels = torch.randn(2, 3, 56, 56)
    out = vit(pixels, output_hidden_states=True)
    emb = vit.embeddings
    patches = F.conv2d(pixels, emb.patch_embedding.weight, emb.patch_embedding.bias, stride=14)
    x = torch.cat([emb.class_embedding.expand(2, -1, -1), patches.flatten(2).transpose(1, 2)], 1)
    x = x + emb.position_embedding
    for layer in vit.encoder.layers:
        x = reference_layer(layer, x)
    assert out.last_hidden_state.shape == (2, 1 + 16, 32)
    torch.testing.assert_close(out.last_hidden_state, x, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.pooler_output, x[:, 0])
    assert len(out.hidden_states) == 3  # embeddings + 2 layers
    torch.testing.assert_close(out.hidden_states[-1], out.last_hidden_state)


def test_position_embedding_bicubic_resize_for_other_sizes():
    vit = tiny_vit()
    table = vit.embeddings.position_embedding[:, 1:].reshape(1, 4, 4, 32).permute(0, 3, 1, 2)
    # native grid: the table itself (bicubic resizing to the same size is the identity)
    same = F.interpolate(table, size=(4, 4), mode="bicubic", align_corners=False)
    torch.testing.assert_close(same, table)
    torch.testing.assert_close(vit.embeddings.patch_position_embedding(4, 4),
                               vit.embeddings.position_embedding[:, 1:])
    # 84 px -> 6 x 6 patches: InternVL's bicubic, align_corners=False resize
    resized = F.interpolate(table, size=(6, 6), mode="bicubic", align_corners=False)
    torch.testing.assert_close(vit.embeddings.patch_position_embedding(6, 6),
                               resized.flatten(2).transpose(1, 2))
    assert vit(torch.randn(1, 3, 84, 84)).last_hidden_state.shape == (1, 37, 32)


def test_drop_path_only_in_training():
    vit = tiny_vit(drop_path_rate=0.5)
    pixels = torch.randn(8, 3, 56, 56)
    with torch.no_grad():
        a, b = vit(pixels).last_hidden_state, vit(pixels).last_hidden_state
        torch.testing.assert_close(a, b)
        vit.train()
        torch.manual_seed(1)
        c = vit(pixels).last_hidden_state
    assert not torch.allclose(a, c)


def test_rms_norm_and_qk_normalization_variant():
    vit = tiny_vit(norm_type="rms_norm", qk_normalization=True)
    keys = set(vit.state_dict())
    assert "encoder.layers.0.attn.q_norm.weight" in keys
    assert "encoder.layers.0.norm1.bias" not in keys
    assert torch.isfinite(vit(torch.randn(1, 3, 56, 56)).last_hidden_state).all()


def test_bad_inputs():
    vit = tiny_vit()
    with pytest.raises(ValueError, match="pixel_values"):
        vit(torch.randn(3, 56, 56))
    with pytest.raises(ValueError, match="divisible"):
        InternVisionModel(hidden_size=30, num_attention_heads=4, num_hidden_layers=1)
    with pytest.raises(ValueError, match="norm_type"):
        tiny_vit(norm_type="batch_norm")
    with pytest.raises(ValueError, match="attn_implementation"):
        tiny_vit(attn_implementation="flash")
