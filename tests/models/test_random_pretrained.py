"""scripts/make_random_pretrained.py writes what the project's loaders read.

The tiny size goes through the same writer as the 1B one, and the tiny config reads it with
`pretrained_root` set (the strict InternVL and SAM-2 loaders, the tokenizer loader); the
real-id tokenizer is checked on its own (the 1B weights take minutes, scripts/smoke_1b_cpu.sh).
"""

import json
from pathlib import Path

import pytest
import torch

from mpr_cma.engine.config import load_config
from mpr_cma.models.mllm.configs import INTERNVL2_5_IMG_CONTEXT_TOKEN_ID, internvl_preset
from mpr_cma.models.mllm.internvl import read_safetensors_folder
from mpr_cma.models.mllm.tokenizer import SEG_TOKEN, add_special_tokens, load_tokenizer
from mpr_cma.models.random_pretrained import (
    INTERNVL_DIR,
    SAM2_FILE,
    write_random_pretrained,
    write_real_layout_tokenizer,
)
from mpr_cma.registry import MODELS
from scripts.make_random_pretrained import main

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pretrained")
    assert main(["--out", str(out), "--size", "tiny", "--shard-gb", "0.0001"]) == 0
    return out


def test_layout(tiny_root):
    folder = tiny_root / INTERNVL_DIR
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1, "shard size 0.0001 GB must split the tiny model"
    assert all((folder / s).is_file() for s in shards)
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "internvl_chat"
    assert config["llm_config"]["hidden_size"] == internvl_preset("tiny")["llm"]["hidden_size"]
    state = read_safetensors_folder(folder)
    assert {k.split(".")[0] for k in state} == {"vision_model", "mlp1", "language_model"}
    assert all(v.dtype == torch.bfloat16 for v in state.values() if v.is_floating_point())
    sam2 = torch.load(tiny_root / SAM2_FILE, weights_only=True)
    assert set(sam2) == {"model"}
    assert any(k.startswith("image_encoder.trunk.") for k in sam2["model"])


def test_tiny_config_loads_what_was_written(tiny_root):
    cfg = load_config(CONFIGS / "tiny" / "sa2va_mba_tiny.py",
                      [f"pretrained_root={tiny_root}",
                       "tokenizer=${pretrained_root}/" + INTERNVL_DIR])
    assert cfg.model.mllm_pretrained == f"{tiny_root}/{INTERNVL_DIR}"
    assert cfg.model.grounding.ckpt_path == f"{tiny_root}/{SAM2_FILE}"
    model = MODELS.build(cfg.model)
    written = read_safetensors_folder(tiny_root / INTERNVL_DIR)
    vit = "vision_model.encoder.layers.0.attn.qkv.weight"
    assert torch.equal(model.mllm.vision_model.state_dict()[vit[len("vision_model."):]],
                       written[vit].float())
    sam2 = torch.load(tiny_root / SAM2_FILE, weights_only=True)["model"]
    key = "sam_mask_decoder.iou_token.weight"
    assert torch.equal(model.grounding.sam2_model.state_dict()[key], sam2[key])


def test_seed_changes_the_weights(tmp_path):
    a = write_random_pretrained(tmp_path / "a", "tiny", seed=0)
    b = write_random_pretrained(tmp_path / "b", "tiny", seed=1)
    key = "mlp1.1.weight"
    wa, wb = (read_safetensors_folder(p / INTERNVL_DIR)[key] for p in (a, b))
    assert not torch.equal(wa, wb)


def test_real_layout_tokenizer(tmp_path):
    write_real_layout_tokenizer(tmp_path)
    tok = load_tokenizer(tmp_path)
    assert len(tok) == internvl_preset("internvl2_5_1b")["llm"]["vocab_size"] == 151674
    assert tok.convert_tokens_to_ids("<IMG_CONTEXT>") == INTERNVL2_5_IMG_CONTEXT_TOKEN_ID
    assert tok.convert_tokens_to_ids("<|im_end|>") == 151645 == tok.eos_token_id
    ids = tok("the red circle on the left")["input_ids"]
    assert max(ids) < 500, "text must encode with the BPE entries, never the fillers"
    assert tok.decode(ids) == "the red circle on the left"
    added = add_special_tokens(tok)
    assert added.ids[SEG_TOKEN] == 151674
