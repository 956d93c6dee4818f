"""Sa2VA-1B HF layout: key mapping, LoRA merge, save/load round trips and failure modes."""

import copy
import json

import pytest
import torch
from safetensors.torch import load_file

from mpr_cma.checkpoint.errors import CheckpointKeyError, CorruptCheckpointError
from mpr_cma.checkpoint.files import read_safetensors_folder as read_sa2va_folder
from mpr_cma.engine.config import load_config
from mpr_cma.models.checkpoint import (
    NEW_KEY_PREFIX,
    export_sa2va_state_dict,
    load_sa2va_hf,
    parse_size,
    sa2va_key_map,
    save_sa2va_hf,
    write_safetensors_folder,
)
from mpr_cma.registry import MODELS
from tests.models.test_sa2va import CONFIGS, build, make_batch

SA2VA_PREFIXES = ("vision_model.", "mlp1.", "language_model.", "grounding_encoder.sam2_model.",
                  "text_hidden_fcs.")
NEW_MODULES = ("grounding.mba.", "text_token_fcs.", "criterion.tmc.")


def fresh(seed: int = 1):
    return build("sa2va_mba_tiny.py", seed=seed).eval()


def is_lora(key: str) -> bool:
    return ".lora_A." in key or ".lora_B." in key


def perturb_lora_b(model) -> None:
    """Random LoRA B, as after training (B starts at 0)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.05)


@pytest.fixture(scope="module")
def model():
    m = fresh(seed=0)
    with torch.no_grad():
        m.grounding.mba.gamma.fill_(0.3)  # MBA active, so the round trip exercises it
    return m


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    return save_sa2va_hf(model, tmp_path_factory.mktemp("ckpt") / "sa2va", model_config={"a": 1})


def write_variant(state: dict, tmp_path, **kwargs):
    folder = tmp_path / "variant"
    write_safetensors_folder(state, folder, **kwargs)
    return folder


# ---------------------------------------------------------------------- mapping
def test_key_map_follows_the_sa2va_layout(model):
    mapping = sa2va_key_map(model)
    assert set(mapping) == set(model.state_dict())
    for ours, theirs in mapping.items():
        if is_lora(ours):
            assert theirs is None, ours
        elif ours.startswith(NEW_MODULES):
            assert theirs == NEW_KEY_PREFIX + ours
        else:
            assert theirs.startswith(SA2VA_PREFIXES), (ours, theirs)
            assert "base_layer" not in theirs and "base_model" not in theirs
    q = "mllm.language_model.base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight"
    assert mapping[q] == "language_model.model.layers.0.self_attn.q_proj.weight"
    assert mapping["mllm.language_model.base_model.model.lm_head.weight"] == \
        "language_model.lm_head.weight"
    assert mapping["grounding.sam2_model.memory_encoder.fuser.layers.0.gamma"] == \
        "grounding_encoder.sam2_model.memory_encoder.fuser.layers.0.g_weight"
    assert mapping["mllm.mlp1.1.weight"] == "mlp1.1.weight"
    assert mapping["text_hidden_fcs.2.bias"] == "text_hidden_fcs.2.bias"


def test_1b_config_maps_to_the_sa2va_1b_layout():
    cfg = load_config(CONFIGS / "mba_1b.py").model
    cfg.update(mllm_pretrained=None, tokenizer="tiny")
    cfg.grounding.ckpt_path = None
    with torch.device("meta"):
        model = MODELS.build(cfg)
    keys = [k for k in sa2va_key_map(model).values() if k is not None]

    def count(prefix: str) -> int:
        return len({k[len(prefix):].split(".")[0] for k in keys if k.startswith(prefix)})

    assert count("vision_model.encoder.layers.") == 24  # InternViT-300M
    assert count("language_model.model.layers.") == 24  # Qwen2.5-0.5B
    assert count("grounding_encoder.sam2_model.image_encoder.trunk.blocks.") == 48  # Hiera-L
    assert count("mlp1.") == 3  # LayerNorm, Linear, (GELU), Linear: indices 0, 1, 3
    assert "grounding_encoder.sam2_model.memory_encoder.fuser.layers.1.g_weight" in keys
    assert not any("gamma" in k for k in keys if not k.startswith(NEW_KEY_PREFIX))
    assert all(k.startswith((*SA2VA_PREFIXES, NEW_KEY_PREFIX)) for k in keys)
    with pytest.raises(ValueError, match="meta device"):
        export_sa2va_state_dict(model)


def test_saved_folder_contents(saved, model):
    names = {p.name for p in saved.iterdir()}
    assert {"model.safetensors", "mpr_cma_config.json", "tokenizer_config.json"} <= names
    summary = json.loads((saved / "mpr_cma_config.json").read_text())
    assert summary["vocab_size"] == len(model.tokenizer)
    assert summary["new_key_prefix"] == NEW_KEY_PREFIX and summary["model_config"] == {"a": 1}
    assert summary["mllm"]["llm_config"]["hidden_size"] == model.mllm.llm_config.hidden_size
    keys = set(load_file(str(saved / "model.safetensors")))
    assert keys == {v for v in sa2va_key_map(model).values() if v is not None}


# ---------------------------------------------------------------------- round trips
def test_round_trip_gives_identical_tensors_and_masks(model, saved):
    loaded = fresh(seed=1)
    report = load_sa2va_hf(loaded, saved)
    assert set(report.loaded) | set(report.new_initialised) == set(model.state_dict())
    assert set(report.new_initialised) == {k for k in model.state_dict() if is_lora(k)}
    ours, theirs = model.state_dict(), loaded.state_dict()
    for key, value in ours.items():
        if is_lora(key):
            if ".lora_B." in key:
                assert not theirs[key].any(), key
            continue
        assert torch.equal(value, theirs[key]), key
    exported, reexported = export_sa2va_state_dict(model), export_sa2va_state_dict(loaded)
    assert exported.keys() == reexported.keys()
    assert all(torch.equal(exported[k], reexported[k]) for k in exported)
    batch = make_batch(model)
    with torch.no_grad():
        a = model.run_batch(batch)["grounding"]["pred_masks"]
        b = loaded.run_batch(batch)["grounding"]["pred_masks"]
    assert torch.equal(a, b)


def test_lora_merge_equals_peft_merge_and_keeps_the_model(tmp_path):
    model = fresh(seed=2)
    llm = model.mllm.language_model
    perturb_lora_b(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    exported = export_sa2va_state_dict(model)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())

    reference = copy.deepcopy(llm).merge_and_unload().state_dict()
    llm_keys = {k for k in exported if k.startswith("language_model.")}
    assert llm_keys == {"language_model." + k for k in reference}
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(reference[q], before[
        "mllm.language_model.base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight"])
    for key in reference:
        torch.testing.assert_close(exported["language_model." + key], reference[key],
                                   rtol=0, atol=1e-7)

    save_sa2va_hf(model, tmp_path / "merged")
    loaded = fresh(seed=3)
    perturb_lora_b(loaded)  # a trained model: loading the merged release must reset B
    load_sa2va_hf(loaded, tmp_path / "merged")
    assert not any(p.any() for n, p in loaded.named_parameters() if "lora_B" in n)
    batch = make_batch(model)
    args = (batch["input_ids"], batch["pixel_values"], batch["attention_mask"])
    with torch.no_grad():
        want = model.mllm(*args, output_hidden_states=False).logits
        got = loaded.mllm(*args, output_hidden_states=False).logits
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_sharded_round_trip(model, tmp_path):
    folder = save_sa2va_hf(model, tmp_path / "sharded", max_shard_size="200KB")
    shards = sorted(folder.glob("model-*-of-*.safetensors"))
    assert len(shards) > 2 and not (folder / "model.safetensors").exists()
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == {p.name for p in shards}
    loaded = fresh(seed=1)
    load_sa2va_hf(loaded, folder)
    exported, reexported = export_sa2va_state_dict(model), export_sa2va_state_dict(loaded)
    assert all(torch.equal(exported[k], reexported[k]) for k in exported)


def test_bf16_export_loads_into_an_fp32_model(model, tmp_path):
    folder = save_sa2va_hf(model, tmp_path / "bf16", dtype=torch.bfloat16)
    assert read_sa2va_folder(folder)["mlp1.1.weight"].dtype == torch.bfloat16
    loaded = fresh(seed=1)
    load_sa2va_hf(loaded, folder)
    assert torch.equal(loaded.mllm.mlp1[1].weight, model.mllm.mlp1[1].weight.bfloat16().float())


# ---------------------------------------------------------------------- plain Sa2VA release
def test_plain_sa2va_release_reports_new_parameters(model, tmp_path):
    state = {k: v for k, v in export_sa2va_state_dict(model).items()
             if not k.startswith(NEW_KEY_PREFIX)}
    loaded = fresh(seed=1)
    init = {k: v.clone() for k, v in loaded.state_dict().items() if k.startswith(NEW_MODULES)}
    report = load_sa2va_hf(loaded, write_variant(state, tmp_path))
    new = set(report.new_initialised)
    assert set(init) <= new
    assert {k for k in new if not k.startswith(NEW_MODULES)} == \
        {k for k in loaded.state_dict() if is_lora(k)}
    assert any(k.startswith("grounding.mba.") for k in new)
    assert any(k.startswith("text_token_fcs.") for k in new)
    assert any(k.startswith("criterion.tmc.") for k in new)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in init.items())
    assert len(report.loaded) == len(state)


def test_our_folder_must_hold_every_new_parameter(model, tmp_path):
    state = export_sa2va_state_dict(model)
    del state["mpr_cma.grounding.mba.gamma"]
    with pytest.raises(CheckpointKeyError, match=r"mpr_cma\.grounding\.mba\.gamma"):
        load_sa2va_hf(fresh(), write_variant(state, tmp_path))


# ---------------------------------------------------------------------- mismatches
@pytest.mark.parametrize("key", ["vision_model.embeddings.class_embedding",
                                 "language_model.model.layers.0.mlp.up_proj.weight",
                                 "grounding_encoder.sam2_model.memory_encoder.fuser.layers.0.g_weight"])
def test_removed_key_is_named(model, tmp_path, key):
    state = export_sa2va_state_dict(model)
    del state[key]
    with pytest.raises(CheckpointKeyError, match=r"missing keys \(1\): " + key.replace(
            ".", r"\.")) as info:
        load_sa2va_hf(fresh(), write_variant(state, tmp_path))
    assert str(tmp_path / "variant") in str(info.value)


def test_renamed_key_is_named(model, tmp_path):
    state = export_sa2va_state_dict(model)
    state["text_hidden_fcs.1.weight"] = state.pop("text_hidden_fcs.0.weight")
    folder = write_variant(state, tmp_path)
    with pytest.raises(CheckpointKeyError) as info:
        load_sa2va_hf(fresh(), folder)
    assert info.value.missing == ["text_hidden_fcs.0.weight"]
    assert info.value.unexpected == ["text_hidden_fcs.1.weight"]
    assert "text_hidden_fcs.1.weight" in str(info.value) and info.value.file == folder


def test_shape_mismatch_is_named(model, tmp_path):
    state = export_sa2va_state_dict(model)
    state["mlp1.1.bias"] = torch.zeros(3)
    with pytest.raises(CheckpointKeyError, match=r"mlp1\.1\.bias checkpoint \(3,\)"):
        load_sa2va_hf(fresh(), write_variant(state, tmp_path))


def test_vocabulary_size_mismatch_names_both_sizes(model, tmp_path):
    state = export_sa2va_state_dict(model)
    rows = len(model.tokenizer)
    for key in ("language_model.model.embed_tokens.weight", "language_model.lm_head.weight"):
        state[key] = state[key][: rows - 2].clone()
    with pytest.raises(ValueError, match=f"{rows - 2} rows.*{rows} tokens"):
        load_sa2va_hf(fresh(), write_variant(state, tmp_path))


# ---------------------------------------------------------------------- files
def test_missing_folder_and_weights_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere")):
        load_sa2va_hf(fresh(), tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        read_sa2va_folder(tmp_path / "empty")


def test_missing_shard_is_named(model, tmp_path):
    folder = write_variant(export_sa2va_state_dict(model), tmp_path, max_shard_size="200KB")
    shard = sorted(folder.glob("model-*.safetensors"))[1]
    shard.unlink()
    with pytest.raises(FileNotFoundError, match=str(shard)):
        read_sa2va_folder(folder)


@pytest.mark.parametrize("damage", ["garbage", "truncate"])
def test_corrupted_file_is_named(saved, tmp_path, damage):
    folder = tmp_path / "bad"
    folder.mkdir()
    data = (saved / "model.safetensors").read_bytes()
    data = b"not a safetensors file" if damage == "garbage" else data[: len(data) // 2]
    (folder / "model.safetensors").write_bytes(data)
    with pytest.raises(CorruptCheckpointError, match=str(folder / "model.safetensors")):
        read_sa2va_folder(folder)


def test_refuses_to_overwrite_and_overwrite_drops_stale_shards(model, tmp_path):
    folder = save_sa2va_hf(model, tmp_path / "out", max_shard_size="200KB")
    with pytest.raises(FileExistsError, match=str(folder)):
        save_sa2va_hf(model, folder)
    save_sa2va_hf(model, folder, overwrite=True)
    assert (folder / "model.safetensors").is_file()
    assert not list(folder.glob("model-*"))
    assert not (folder / "model.safetensors.index.json").exists()
    load_sa2va_hf(fresh(), folder)


def test_parse_size():
    assert parse_size(100) == 100
    assert parse_size("5GB") == 5 * 10**9
    assert parse_size("200KB") == 200_000
    assert parse_size("2GiB") == 2 * 2**30
