"""InternVLChatModel: 1B layout and size, pixel shuffle, image-token splicing, training
forward/backward, strict safetensors loading, LoRA as in Sa2VA."""

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from mpr_cma.checkpoint.errors import CheckpointKeyError
from mpr_cma.models.mllm import (
    TINY_IMG_CONTEXT_TOKEN_ID,
    TINY_TOKENIZER_VOCAB_SIZE,
    InternVLChatModel,
    count_parameters,
    internvl2_5_1b_config,
    load_internvl_checkpoint,
    pixel_shuffle,
    tiny_internvl_config,
)
from mpr_cma.registry import MODELS

CTX = TINY_IMG_CONTEXT_TOKEN_ID  # <IMG_CONTEXT> id of the tiny config
VOCAB = TINY_TOKENIZER_VOCAB_SIZE
TOKENS_PER_TILE = 4  # 56 px tile: 4 x 4 patches -> pixel shuffle -> 2 x 2


def tiny_model(seed=0, **cfg) -> InternVLChatModel:
    torch.manual_seed(seed)
    return InternVLChatModel(**tiny_internvl_config(**cfg)).eval()


def make_batch(tiles_per_sample=(1, 2), text=5, seed=0):
    """Prompts `text tokens, <IMG_CONTEXT> x 4 per tile, text tokens`, right-padded."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for n_tiles in tiles_per_sample:
        pre = torch.randint(0, 500, (text,), generator=g)
        post = torch.randint(0, 500, (text + n_tiles,), generator=g)
        rows.append(torch.cat([pre, torch.full((TOKENS_PER_TILE * n_tiles,), CTX), post]))
    length = max(len(r) for r in rows)
    input_ids = torch.zeros(len(rows), length, dtype=torch.long)
    mask = torch.zeros(len(rows), length, dtype=torch.long)
    for i, r in enumerate(rows):
        input_ids[i, : len(r)], mask[i, : len(r)] = r, 1
    labels = input_ids.masked_fill((mask == 0) | (input_ids == CTX), -100)
    pixels = torch.randn(sum(tiles_per_sample), 3, 56, 56, generator=g)
    return input_ids, mask, labels, pixels


# ---------------------------------------------------------------- 1B layout and size
@pytest.fixture(scope="module")
def meta_1b():
    with torch.device("meta"):
        return InternVLChatModel(**internvl2_5_1b_config())


def test_1b_projector_and_llm_shapes(meta_1b):
    shapes = {k: tuple(v.shape) for k, v in meta_1b.state_dict().items()}
    assert {k: v for k, v in shapes.items() if k.startswith("mlp1.")} == {
        "mlp1.0.weight": (4096,), "mlp1.0.bias": (4096,),
        "mlp1.1.weight": (896, 4096), "mlp1.1.bias": (896,),
        "mlp1.3.weight": (896, 896), "mlp1.3.bias": (896,),
    }
    assert shapes["language_model.model.embed_tokens.weight"] == (151674, 896)
    assert shapes["language_model.lm_head.weight"] == (151674, 896)
    layer = "language_model.model.layers.23."
    assert shapes[layer + "self_attn.q_proj.weight"] == (896, 896)
    assert shapes[layer + "self_attn.k_proj.weight"] == (128, 896)  # 2 KV heads x 64
    assert shapes[layer + "self_attn.v_proj.bias"] == (128,)
    assert shapes[layer + "mlp.gate_proj.weight"] == (4864, 896)
    assert "language_model.model.layers.24.mlp.up_proj.weight" not in shapes
    prefixes = {k.split(".")[0] for k in shapes}
    assert prefixes == {"vision_model", "mlp1", "language_model"}
    assert meta_1b.num_image_token == 256
    cfg = meta_1b.llm_config
    assert (cfg.rope_theta, cfg.rms_norm_eps, cfg.max_position_embeddings) == (1e6, 1e-6, 32768)
    assert not cfg.tie_word_embeddings


def test_1b_parameter_count_from_formula(meta_1b):
    vd, vi = 1024, 4096
    vision = (vd + 3 * 14 * 14 * vd + vd + (1 + 32 * 32) * vd
              + 24 * (4 * vd * vd + 2 * vi * vd + 11 * vd + vi))
    h, li, vocab, kv = 896, 4864, 151674, 128
    projector = 2 * 4 * vd + (4 * vd * h + h) + (h * h + h)
    llm_layer = (h * h + h) + 2 * (h * kv + kv) + h * h + 3 * h * li + 2 * h
    llm = 2 * vocab * h + 24 * llm_layer + h  # untied embed + lm_head, final norm
    counts = count_parameters(meta_1b)
    print(f"InternVL2_5-1B parameters: {counts}")
    assert counts["total"] == vision + projector + llm == 938_193_024
    assert counts["trainable"] == counts["total"]


# ---------------------------------------------------------------- pixel shuffle
def test_pixel_shuffle_matches_hand_reference():
    x = torch.randn(2, 6, 4, 3)
    # token (i, j) = channels of [x[2i,2j], x[2i,2j+1], x[2i+1,2j], x[2i+1,2j+1]]
    ref = torch.cat([x[:, 0::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 0::2], x[:, 1::2, 1::2]], -1)
    torch.testing.assert_close(pixel_shuffle(x, 0.5), ref)
    torch.testing.assert_close(pixel_shuffle(x, 0.5, "v1"), ref.transpose(1, 2))
    grid = torch.arange(4.0).reshape(1, 2, 2, 1)  # [[a, b], [c, d]] -> one token (a, b, c, d)
    assert pixel_shuffle(grid).flatten().tolist() == [0.0, 1.0, 2.0, 3.0]


def test_pixel_shuffle_equals_internvl_view_permute_sequence():
    x = torch.randn(1, 8, 8, 5)
    n, w, h, c = x.shape  # InternVL's own sequence of views (ps_version v2)
    y = x.view(n, w, h // 2, c * 2).permute(0, 2, 1, 3).contiguous()
    y = y.view(n, h // 2, w // 2, c * 4).permute(0, 2, 1, 3)
    torch.testing.assert_close(pixel_shuffle(x), y)


def test_pixel_shuffle_bad_inputs():
    with pytest.raises(ValueError, match="divisible"):
        pixel_shuffle(torch.randn(1, 3, 4, 2))
    with pytest.raises(ValueError, match="ps_version"):
        pixel_shuffle(torch.randn(1, 4, 4, 2), ps_version="v3")


# ---------------------------------------------------------------- image tokens and forward
def test_extract_feature_shapes():
    model = tiny_model()
    assert model.extract_feature(torch.randn(3, 3, 56, 56)).shape == (3, 4, 64)
    model = tiny_model(image_size=112)
    assert model.num_image_token == 16
    assert model.extract_feature(torch.randn(2, 3, 112, 112)).shape == (2, 16, 64)


def test_img_context_embeddings_replaced_in_order():
    model = tiny_model()
    input_ids, _, _, pixels = make_batch()
    with torch.no_grad():
        embeds = model.embed_inputs(input_ids, pixels)
        vit = model.extract_feature(pixels).reshape(-1, 64)
        table = model.language_model.get_input_embeddings().weight
    selected = input_ids == CTX
    torch.testing.assert_close(embeds[selected], vit)  # row-major order = tile order
    torch.testing.assert_close(embeds[~selected], table[input_ids[~selected]])


def test_precomputed_vision_embeds_stand_in_for_pixels():
    """Inference encodes the tiles once and passes the tokens to several forwards."""
    model = tiny_model()
    input_ids, mask, _, pixels = make_batch()
    with torch.no_grad():
        vit = model.extract_feature(pixels)
        assert torch.equal(model.embed_inputs(input_ids, vision_embeds=vit),
                           model.embed_inputs(input_ids, pixels))
        assert torch.equal(model(input_ids, attention_mask=mask, vision_embeds=vit).logits,
                           model(input_ids, pixels, mask).logits)
    with pytest.raises(ValueError, match="not both"):
        model.embed_inputs(input_ids, pixels, vision_embeds=vit)
    with pytest.raises(ValueError, match="12 <IMG_CONTEXT> tokens.*8 vision tokens"):
        model.embed_inputs(input_ids, vision_embeds=vit[:2])


def test_context_count_mismatch_names_both_counts():
    model = tiny_model()
    input_ids, mask, _, pixels = make_batch()  # 12 context tokens, 3 tiles
    with pytest.raises(ValueError, match=r"12 <IMG_CONTEXT> tokens.*8 vision tokens"):
        model(input_ids, pixels[:2], mask)
    with pytest.raises(ValueError, match="no pixel_values"):
        model(input_ids, None, mask)


def test_forward_backward_frozen_vision():
    model = tiny_model().train()
    model.freeze_vision()
    input_ids, mask, labels, pixels = make_batch()
    out = model(input_ids, pixels, mask, labels=labels)
    assert out.logits.shape == (2, input_ids.shape[1], VOCAB)
    assert len(out.hidden_states) == 3 and out.hidden_states[-1].shape[-1] == 64
    ref = F.cross_entropy(out.logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten())
    torch.testing.assert_close(out.loss, ref)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    for name, p in model.named_parameters():
        if name.startswith("vision_model."):
            assert p.grad is None, name
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.mlp1.parameters())
    llm_q = model.language_model.model.layers[0].self_attn.q_proj.weight
    assert llm_q.grad is not None and llm_q.grad.abs().sum() > 0


def test_image_flags_drop_dummy_tiles():
    model = tiny_model()
    input_ids, mask, labels, pixels = make_batch((1, 2))
    flags = torch.tensor([1, 0, 1, 1])  # a dummy tile inserted in second place
    padded = torch.cat([pixels[:1], torch.zeros(1, 3, 56, 56), pixels[1:]])
    with torch.no_grad():
        a = model(input_ids, pixels, mask).logits
        b = model(input_ids, padded, mask, image_flags=flags).logits
    torch.testing.assert_close(a, b)


def test_text_only_batch_with_dummy_tile_keeps_projector_in_graph():
    model = tiny_model()
    input_ids = torch.randint(0, 500, (2, 7))
    out = model(input_ids, torch.zeros(2, 3, 56, 56), labels=input_ids,
                image_flags=torch.zeros(2, dtype=torch.long))
    out.loss.backward()
    assert all(p.grad is not None for p in model.mlp1.parameters())


def test_sdpa_and_eager_configs_agree():
    sdpa, eager = tiny_model(), tiny_model(attn_implementation="eager")
    eager.load_state_dict(sdpa.state_dict())
    input_ids, mask, _, pixels = make_batch()
    with torch.no_grad():
        torch.testing.assert_close(sdpa(input_ids, pixels, mask).logits,
                                   eager(input_ids, pixels, mask).logits, atol=1e-5, rtol=1e-4)


def test_resize_token_embeddings_and_registry():
    model = MODELS.build(dict(type="InternVLChatModel", **tiny_internvl_config()))
    model.resize_token_embeddings(517)
    assert model.language_model.get_input_embeddings().weight.shape == (517, 64)
    assert model.language_model.lm_head.weight.shape == (517, 64)


# ---------------------------------------------------------------- checkpoint loading
def save_hf_folder(model, folder, shards=1):
    """Write `model` as an HF folder: model.safetensors, or N shards + index."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if shards == 1:
        save_file(state, str(folder / "model.safetensors"))
        return
    keys = sorted(state)
    weight_map = {}
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = keys[i::shards]
        save_file({k: state[k] for k in part}, str(folder / name))
        weight_map.update(dict.fromkeys(part, name))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))


@pytest.mark.parametrize("shards", [1, 3])
def test_save_and_load_roundtrip(tmp_path, shards):
    src, dst = tiny_model(seed=0), tiny_model(seed=1)
    save_hf_folder(src, tmp_path / "ckpt", shards)
    input_ids, mask, _, pixels = make_batch()
    with torch.no_grad():
        assert not torch.allclose(src(input_ids, pixels, mask).logits,
                                  dst(input_ids, pixels, mask).logits)
        load_internvl_checkpoint(dst, tmp_path / "ckpt")
        torch.testing.assert_close(src(input_ids, pixels, mask).logits,
                                   dst(input_ids, pixels, mask).logits, atol=0, rtol=0)


def test_removed_or_renamed_key_is_named(tmp_path):
    model = tiny_model()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    (tmp_path / "a").mkdir()
    removed = dict(state)
    del removed["vision_model.encoder.layers.1.ls2"]
    save_file(removed, str(tmp_path / "a" / "model.safetensors"))
    with pytest.raises(CheckpointKeyError, match=r"missing keys \(1\): vision_model\."
                                                      r"encoder\.layers\.1\.ls2"):
        load_internvl_checkpoint(model, tmp_path / "a")
    (tmp_path / "b").mkdir()
    renamed = dict(state)
    renamed["mlp1.2.weight"] = renamed.pop("mlp1.3.weight")
    save_file(renamed, str(tmp_path / "b" / "model.safetensors"))
    with pytest.raises(CheckpointKeyError) as err:
        load_internvl_checkpoint(model, tmp_path / "b")
    assert err.value.missing == ["mlp1.3.weight"] and err.value.unexpected == ["mlp1.2.weight"]
    assert "mlp1.2.weight" in str(err.value) and "mlp1.3.weight" in str(err.value)
    # extra prefixes (e.g. the SAM-2 part of a Sa2VA folder) can be skipped on request
    (tmp_path / "c").mkdir()
    extra = state | {"grounding_encoder.x": torch.zeros(1)}
    save_file(extra, str(tmp_path / "c" / "model.safetensors"))
    with pytest.raises(CheckpointKeyError, match="grounding_encoder.x"):
        load_internvl_checkpoint(model, tmp_path / "c")
    load_internvl_checkpoint(model, tmp_path / "c", ignore_prefixes=("grounding_encoder.",))


def test_shape_mismatch_and_missing_files(tmp_path):
    model = tiny_model()
    save_hf_folder(tiny_model(vocab_size=520, img_context_token_id=CTX), tmp_path / "big")
    with pytest.raises(CheckpointKeyError, match=r"embed_tokens\.weight checkpoint \(520"):
        load_internvl_checkpoint(model, tmp_path / "big")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_internvl_checkpoint(model, tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_internvl_checkpoint(model, tmp_path / "empty")
    save_hf_folder(model, tmp_path / "sharded", shards=2)
    (tmp_path / "sharded" / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model-00002-of-00002"):
        load_internvl_checkpoint(model, tmp_path / "sharded")


def test_meta_model_cannot_be_loaded(tmp_path):
    with torch.device("meta"):
        model = InternVLChatModel(**tiny_internvl_config())
    with pytest.raises(ValueError, match="meta"):
        load_internvl_checkpoint(model, tmp_path)


# ---------------------------------------------------------------- LoRA (Sa2VA recipe)
def test_lora_trains_only_adapters_embeddings_and_projector():
    model = tiny_model()
    input_ids, mask, labels, pixels = make_batch()
    with torch.no_grad():
        before = model(input_ids, pixels, mask).logits
    model.freeze_vision()
    targets = model.apply_lora(r=4, alpha=8)
    assert targets == ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    for name in trainable:
        assert ("lora_" in name or name.startswith("mlp1.") or "embed_tokens" in name
                or "lm_head" in name), name
    assert any("embed_tokens" in n for n in trainable) and any("lm_head" in n for n in trainable)
    assert not any(n.startswith("vision_model.") for n in trainable)
    # r (in + out) per adapted linear; 2 layers of q, k, v, o, gate, up, down (hidden 64,
    # KV width 32, MLP 128)
    per_layer = 4 * ((64 + 64) * 2 + (64 + 32) * 2 + (128 + 64) * 3)
    lora = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    assert lora == 2 * per_layer
    expected = lora + 2 * VOCAB * 64 + sum(p.numel() for p in model.mlp1.parameters())
    assert count_parameters(model)["trainable"] == expected
    with torch.no_grad():  # lora_B starts at zero: the function is unchanged
        torch.testing.assert_close(model(input_ids, pixels, mask).logits, before)
    model.train()
    model(input_ids, pixels, mask, labels=labels).loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if "lora_B" in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)
    with pytest.raises(RuntimeError, match="already"):
        model.apply_lora()
