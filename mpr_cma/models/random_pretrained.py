"""Random-init stand-ins for the pretrained files of the 1B recipe, in the real layouts.

No pretrained weights can be downloaded on a CPU test machine, yet the 1B configs must run
through the same loaders as with the real files. `write_random_pretrained` writes the folder
that a config's `pretrained_root` names (configs/_base_/models/sa2va_mba_1b.py)::

    ROOT/InternVL2_5-1B/config.json                      InternVL HF config (model_type
                                                         internvl_chat, vision/llm configs)
    ROOT/InternVL2_5-1B/model-0000K-of-0000N.safetensors shards + model.safetensors.index.json
    ROOT/InternVL2_5-1B/tokenizer.json, tokenizer_config.json, special_tokens_map.json
    ROOT/sam2_hiera_large.pt                             {"model": SAM-2 state dict}

The weights are the modules' own random init at the real sizes (or at the tiny sizes, for
tests), with the key names of the real checkpoints (docs: /FORMATS.md "Checkpoints"): the
InternVL keys of `InternVLChatModel` and the SAM-2 keys of the `sam2` package's `SAM2Base`.

The tokenizer is a stand-in with the real tokenizer's *id layout*: the shipped tiny
byte-level BPE (so any text encodes) padded with unreachable filler entries up to Qwen2.5's
151643 regular ids, then Qwen2.5's 22 special tokens and InternVL's 9 tokens at their real
ids (`<IMG_CONTEXT>` = 151667, 151674 ids in all, the LLM's vocab_size). Texts therefore
encode to more tokens than with Qwen's 151k merges; embedding and lm_head shapes are real.
"""

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor

from mpr_cma.models.mllm.configs import (
    INTERNVL2_5_IMG_CONTEXT_TOKEN_ID,
    TINY_TOKENIZER_VOCAB_SIZE,
    internvl_preset,
)
from mpr_cma.models.mllm.internvl import InternVLChatModel
from mpr_cma.models.mllm.tokenizer import INTERNVL_SPECIAL_TOKENS, tiny_tokenizer_path

INTERNVL_DIR = "InternVL2_5-1B"
SAM2_FILE = "sam2_hiera_large.pt"
SIZES = ("1b", "tiny")

# Qwen2.5's added tokens, ids 151643..151664, in its tokenizer's order.
QWEN2_5_ADDED_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>",
    "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>",
    "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
    "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
    "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
)
QWEN2_5_REGULAR_IDS = 151643


def _internvl_config_json(preset: dict) -> dict:
    """InternVL2_5-1B's config.json fields that describe the architecture."""
    vision, llm = dict(preset["vision"]), dict(preset["llm"])
    vision.pop("attn_implementation", None)
    llm.pop("attn_implementation", None)
    return {
        "architectures": ["InternVLChatModel"],
        "model_type": "internvl_chat",
        "template": "internvl2_5",
        "downsample_ratio": preset["downsample_ratio"],
        "select_layer": preset["select_layer"],
        "ps_version": preset["ps_version"],
        "force_image_size": vision["image_size"],
        "torch_dtype": "bfloat16",
        "vision_config": {"architectures": ["InternVisionModel"],
                          "model_type": "intern_vit_6b", **vision},
        "llm_config": {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
                       "bos_token_id": 151643, "eos_token_id": 151645, **llm},
    }


def write_real_layout_tokenizer(out_dir: Path) -> None:
    """Write the stand-in tokenizer with Qwen2.5 / InternVL2.5's ids (module docstring).

    Raises:
        ValueError: the shipped tiny tokenizer does not have the expected layout.
    """
    src = tiny_tokenizer_path()
    data = json.loads((src / "tokenizer.json").read_text())
    vocab: dict[str, int] = data["model"]["vocab"]
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise ValueError(f"{src}/tokenizer.json: BPE ids are not 0..{len(vocab) - 1}")
    # Filler entries: no merge produces them, so they are never emitted; they only give the
    # special tokens their real ids.
    for i in range(len(vocab), QWEN2_5_REGULAR_IDS):
        vocab[f"<|filler_{i}|>"] = i
    template = data["added_tokens"][0]
    added = [*QWEN2_5_ADDED_TOKENS, *INTERNVL_SPECIAL_TOKENS]
    data["added_tokens"] = [{**template, "id": QWEN2_5_REGULAR_IDS + i, "content": tok}
                            for i, tok in enumerate(added)]
    context_id = QWEN2_5_REGULAR_IDS + added.index("<IMG_CONTEXT>")
    if context_id != INTERNVL2_5_IMG_CONTEXT_TOKEN_ID:
        raise ValueError(f"<IMG_CONTEXT> would get id {context_id}, InternVL2.5 has "
                         f"{INTERNVL2_5_IMG_CONTEXT_TOKEN_ID}")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False))
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        shutil.copyfile(src / name, out_dir / name)


def _save_shards(state: dict[str, Tensor], out_dir: Path, shard_bytes: int) -> int:
    """Save `state` as HF safetensors shards + model.safetensors.index.json; number of shards."""
    shards: list[dict[str, Tensor]] = [{}]
    size = 0
    for key in sorted(state):
        nbytes = state[key].numel() * state[key].element_size()
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = state[key].contiguous()
        size += nbytes
    n = len(shards)
    weight_map = {}
    for k, shard in enumerate(shards, 1):
        name = f"model-{k:05d}-of-{n:05d}.safetensors"
        save_file(shard, str(out_dir / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, name))
    total = sum(t.numel() * t.element_size() for t in state.values())
    (out_dir / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    return n


def _sam2_state(size: str) -> dict[str, Tensor]:
    """Random-init state dict of the `sam2` package's own SAM2Base (the checkpoint's keys)."""
    from sam2.build_sam import build_sam2

    from mpr_cma.models.grounding.builder import (
        DEFAULT_SAM2_CONFIG,
        image_size_overrides,
        tiny_sam2_overrides,
    )
    overrides = [] if size == "1b" else [*image_size_overrides(64), *tiny_sam2_overrides()]
    model = build_sam2(DEFAULT_SAM2_CONFIG, ckpt_path=None, device="cpu", mode="eval",
                       hydra_overrides_extra=overrides, apply_postprocessing=False)
    return model.state_dict()


def write_random_pretrained(
    out: str | Path,
    size: str = "1b",
    seed: int = 0,
    dtype: torch.dtype = torch.bfloat16,
    shard_bytes: int = 2**30,
    progress: Callable[[str], None] = lambda message: None,
) -> Path:
    """Write a random-init `pretrained_root` folder (module docstring) and return its path.

    Args:
        out: the folder to write (created; existing files of the same names are replaced).
        size: "1b" (InternVL2_5-1B + Hiera-L, ~4 GB on disk) or "tiny" (the tiny preset
            and the tiny SAM-2 overrides at 64 px; its tokenizer is the shipped tiny one).
        seed: torch seed of the random init.
        dtype: dtype of the InternVL shards (the real release is bf16); SAM-2 stays fp32
            as in sam2_hiera_large.pt.
        shard_bytes: largest InternVL shard in bytes.
        progress: called with a short message before each step.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    out = Path(out)
    internvl_dir = out / INTERNVL_DIR
    internvl_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    preset = internvl_preset("internvl2_5_1b" if size == "1b" else "tiny")
    progress(f"building InternVL ({size}) at random init")
    state = InternVLChatModel(**preset).state_dict()
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    progress(f"writing {len(state)} InternVL tensors to {internvl_dir}")
    _save_shards(state, internvl_dir, shard_bytes)
    del state
    (internvl_dir / "config.json").write_text(
        json.dumps(_internvl_config_json(preset), indent=2) + "\n")
    if size == "1b":
        write_real_layout_tokenizer(internvl_dir)
    else:
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            shutil.copyfile(tiny_tokenizer_path() / name, internvl_dir / name)
        if preset["llm"]["vocab_size"] != TINY_TOKENIZER_VOCAB_SIZE:
            raise ValueError("tiny preset vocab_size differs from the shipped tiny tokenizer")
    progress("building SAM-2 at random init")
    torch.save({"model": _sam2_state(size)}, out / SAM2_FILE)
    return out


__all__ = ["INTERNVL_DIR", "SAM2_FILE", "write_random_pretrained", "write_real_layout_tokenizer"]
