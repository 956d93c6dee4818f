"""Sa2VA-1B HF checkpoint layout for `Sa2VAMBA`: export (LoRA merged), save, strict load.

A Sa2VA-1B release is one safetensors state dict (sharded above a size with
`model.safetensors.index.json`), written by Sa2VA's `projects/llava_sam2/hf/convert_to_hf.py`
after merging the LLM LoRA. Key mapping (ours -> checkpoint):

    mllm.vision_model.X                 -> vision_model.X
    mllm.mlp1.X                         -> mlp1.X
    mllm.language_model.X               -> language_model.X (Qwen2ForCausalLM keys); with
        LoRA, peft's `base_model.model.` and `M.base_layer.P` -> `M.P` are removed and the
        base weights hold W + scale * B @ A; `M.lora_A/B.*` are not stored (B = 0 on load)
    grounding.sam2_model.X              -> grounding_encoder.sam2_model.X (`sam2` package
        names), with the name part `gamma` renamed `g_weight`
    text_hidden_fcs.{0,2}.X             -> text_hidden_fcs.{0,2}.X
    anything else (grounding.mba.*, text_token_fcs.*, criterion.tmc.*: new parameters)
                                        -> mpr_cma.<our key>

`gamma` -> `g_weight` is Sa2VA's rename of SAM-2's CXBlock layer scale
(`memory_encoder.fuser.layers.N.gamma`; transformers' loader rewrites names containing
`gamma`). Sa2VA's HF model ignores the unexpected `mpr_cma.` keys; we read them back.

`save_sa2va_hf` writes `model.safetensors` (or HF-style `model-0000i-of-0000n.safetensors`
shards + index), the tokenizer (`save_pretrained`) and `mpr_cma_config.json` (format
version, key prefix, vocabulary size, [SEG] id, LLM config, MLLM/grounding settings, the
caller's build config). Sa2VA's `config.json` and remote code are not written: a Sa2VA HF
loader needs them copied from the Sa2VA-1B release.
"""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from peft import PeftModel
from peft.tuners.lora import Linear as LoraLinear
from peft.tuners.lora import LoraLayer
from safetensors.torch import save_file
from torch import Tensor, nn

from mpr_cma.checkpoint.errors import CheckpointKeyError, CorruptCheckpointError
from mpr_cma.checkpoint.files import (
    CONFIG_NAME,
    INDEX_NAME,
    WEIGHTS_NAME,
    read_safetensors_folder,
)

logger = logging.getLogger(__name__)

NEW_KEY_PREFIX = "mpr_cma."
FORMAT_VERSION = 1
# (our prefix, checkpoint prefix) of the parts that exist in a Sa2VA release.
SA2VA_PREFIXES = (("mllm.vision_model.", "vision_model."), ("mllm.mlp1.", "mlp1."),
                  ("mllm.language_model.", "language_model."),
                  ("grounding.sam2_model.", "grounding_encoder.sam2_model."),
                  ("text_hidden_fcs.", "text_hidden_fcs."))
_SAM2_RENAME = {"gamma": "g_weight"}
_EMBED_KEY = "language_model.model.embed_tokens.weight"


@dataclass
class LoadReport:
    """What `load_sa2va_hf` did, in our model's key names.

    Attributes:
        loaded: model keys copied from the checkpoint.
        new_initialised: model keys absent from the checkpoint by design, left at their
            init: LoRA A (B is set to 0, so the model equals the merged release) and, for a
            plain Sa2VA release (no `mpr_cma.` keys), the new MBA / TMC / text_token_fcs.
    """

    loaded: list[str] = field(default_factory=list)
    new_initialised: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------- key mapping
def _peft_structure(model: nn.Module) -> tuple[list[str], dict[str, LoraLayer]]:
    """Names of the PeftModel wrappers and of the LoRA layers inside `model`."""
    wrappers, layers = [], {}
    for name, module in model.named_modules():
        if isinstance(module, PeftModel):
            wrappers.append(name)
        elif isinstance(module, LoraLayer):
            layers[name] = module
    return wrappers, layers


def _lora_owner(key: str, layers: dict[str, LoraLayer]) -> tuple[str, str] | None:
    """(LoRA layer name, rest of the key) when `key` belongs to a LoRA layer."""
    parts = key.split(".")
    for i in range(len(parts) - 1, 0, -1):
        name = ".".join(parts[:i])
        if name in layers:
            return name, ".".join(parts[i:])
    return None


def _plain_key(key: str, wrappers: list[str], layers: dict[str, LoraLayer]) -> str | None:
    """Our key without peft's wrapping (None for LoRA adapter weights)."""
    owner = _lora_owner(key, layers)
    if owner is not None:
        name, rest = owner
        if not rest.startswith("base_layer."):
            return None  # lora_A / lora_B / ...: merged into the base weight on export
        key = f"{name}.{rest[len('base_layer.'):]}"
    for wrapper in wrappers:
        inner = f"{wrapper}.base_model.model."
        if key.startswith(inner):
            return f"{wrapper}.{key[len(inner):]}"
    return key


def _checkpoint_key(plain: str) -> str:
    for ours, theirs in SA2VA_PREFIXES:
        if plain.startswith(ours):
            rest = plain[len(ours):]
            if theirs.startswith("grounding_encoder."):
                rest = ".".join(_SAM2_RENAME.get(p, p) for p in rest.split("."))
            return theirs + rest
    return NEW_KEY_PREFIX + plain


def sa2va_key_map(model: nn.Module) -> dict[str, str | None]:
    """Map every key of `model.state_dict()` to its Sa2VA checkpoint key.

    Args:
        model: a `Sa2VAMBA` (LoRA-wrapped LLM or not).

    Returns:
        {our key: checkpoint key}, None for LoRA adapter weights (not in a release).

    Raises:
        RuntimeError: two model keys map to the same checkpoint key.
    """
    wrappers, layers = _peft_structure(model)
    mapping: dict[str, str | None] = {}
    seen: dict[str, str] = {}  # checkpoint key -> our key
    for key in model.state_dict():
        plain = _plain_key(key, wrappers, layers)
        target = None if plain is None else _checkpoint_key(plain)
        if target is not None:
            if target in seen:
                raise RuntimeError(f"model keys {seen[target]} and {key} both map to {target}")
            seen[target] = key
        mapping[key] = target
    return mapping


# ---------------------------------------------------------------------- export
def _require_materialised(model: nn.Module, what: str) -> None:
    if any(t.is_meta for t in model.state_dict().values()):
        raise ValueError(f"{what}: the model is on the meta device; build it on a real "
                         "device first")


def _merged_weight(layer: LoraLayer, name: str, base: Tensor) -> Tensor:
    """W + sum over active adapters of scale * B @ A, computed in fp32, not in place."""
    if layer.merged or layer.disable_adapters:
        return base  # merged: W already holds the delta; disabled: forward uses W alone
    if not isinstance(layer, LoraLinear):
        raise NotImplementedError(f"{name}: merging {type(layer).__name__} LoRA layers is "
                                  "not supported (only peft lora.Linear)")
    merged = base.float()
    for adapter in layer.active_adapters:
        if adapter not in layer.lora_A:
            continue
        if layer.use_dora.get(adapter) or getattr(layer, "lora_bias", {}).get(adapter):
            raise NotImplementedError(f"{name}: DoRA / LoRA bias adapters are not supported")
        a = layer.lora_A[adapter].weight.detach().float()
        b = layer.lora_B[adapter].weight.detach().float()
        delta = (b @ a) * layer.scaling[adapter]
        merged = merged + (delta.T if layer.fan_in_fan_out else delta)
    return merged.to(base.dtype)


@torch.no_grad()
def export_sa2va_state_dict(model: nn.Module, dtype: torch.dtype | None = None
                            ) -> dict[str, Tensor]:
    """Sa2VA-layout state dict of `model`: LoRA merged, new parameters under `mpr_cma.`.

    The live model is not modified: merged weights are computed from the peft modules.
    Every tensor is a CPU copy (tied weights become two equal tensors, as safetensors
    requires).

    Args:
        model: a `Sa2VAMBA`.
        dtype: cast floating-point tensors to this dtype (Sa2VA releases bf16); None keeps
            each tensor's dtype.

    Returns:
        {checkpoint key: tensor} in the model's state-dict order.
    """
    _require_materialised(model, "export_sa2va_state_dict")
    _, layers = _peft_structure(model)
    state = model.state_dict()
    out: dict[str, Tensor] = {}
    for key, target in sa2va_key_map(model).items():
        if target is None:
            continue
        value = state[key].detach()
        owner = _lora_owner(key, layers)
        if owner is not None and owner[1] == "base_layer.weight":
            value = _merged_weight(layers[owner[0]], owner[0], value)
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        out[target] = value.to("cpu", copy=True).contiguous()
    return out


# ---------------------------------------------------------------------- files
def parse_size(size: int | str) -> int:
    """Bytes from an int or a string such as "5GB", "500MB", "2GiB", "100KB"."""
    text = str(size).strip().upper()
    units = {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "KB": 10**3, "MB": 10**6, "GB": 10**9,
             "B": 1, "": 1}
    unit = next(u for u in units if text.endswith(u))
    return int(float(text[: len(text) - len(unit)]) * units[unit])


def write_safetensors_folder(state: dict[str, Tensor], folder: str | Path,
                             max_shard_size: int | str = "5GB") -> list[Path]:
    """Write `state` as HF does: one `model.safetensors`, or shards plus an index json.

    Weight files already in `folder` (`model*.safetensors`, the index) are removed first,
    so no stale shard or index survives. Shards are filled greedily in key order; a tensor
    larger than `max_shard_size` gets a shard of its own.

    Returns:
        The weight files written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in [*folder.glob("model*.safetensors"), folder / INDEX_NAME]:
        stale.unlink(missing_ok=True)
    limit = parse_size(max_shard_size)
    shards: list[dict[str, Tensor]] = [{}]
    used, metadata = 0, {"format": "pt"}
    for key, value in state.items():
        nbytes = value.numel() * value.element_size()
        if shards[-1] and used + nbytes > limit:
            shards.append({})
            used = 0
        shards[-1][key] = value
        used += nbytes
    if len(shards) == 1:
        path = folder / WEIGHTS_NAME
        save_file(shards[0], str(path), metadata=metadata)
        return [path]
    paths, weight_map = [], {}
    for i, shard in enumerate(shards, 1):
        path = folder / f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(path), metadata=metadata)
        weight_map.update(dict.fromkeys(shard, path.name))
        paths.append(path)
    total = sum(v.numel() * v.element_size() for v in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
    return paths


def _model_summary(model: nn.Module, model_config: dict | None, dtype: torch.dtype | None
                   ) -> dict:
    mllm, grounding = model.mllm, model.grounding
    return {
        "format": "sa2va-hf", "format_version": FORMAT_VERSION,
        "architecture": type(model).__name__, "new_key_prefix": NEW_KEY_PREFIX,
        "lora_merged": True, "dtype": None if dtype is None else str(dtype),
        "vocab_size": len(model.tokenizer), "seg_token_id": model.seg_token_id,
        "text_tokens": model.text_tokens,
        "mllm": {"img_context_token_id": mllm.img_context_token_id,
                 "downsample_ratio": mllm.downsample_ratio, "select_layer": mllm.select_layer,
                 "ps_version": mllm.ps_version, "num_image_token": mllm.num_image_token,
                 "llm_config": mllm.llm_config.to_dict()},
        "grounding": {"image_size": grounding.image_size, "hidden_dim": grounding.hidden_dim,
                      "mba": None if grounding.mba is None else type(grounding.mba).__name__},
        "model_config": model_config,
    }


def save_sa2va_hf(model: nn.Module, folder: str | Path, max_shard_size: int | str = "5GB",
                  overwrite: bool = False, dtype: torch.dtype | None = None,
                  model_config: dict | None = None) -> Path:
    """Save `model` as a Sa2VA-1B-style HF folder (weights, tokenizer, `mpr_cma_config.json`).

    Args:
        model: a `Sa2VAMBA`; not modified (LoRA is merged into copies).
        folder: output folder; created if needed.
        max_shard_size: bytes or "5GB"-style; above it the weights are sharded with an index.
        overwrite: allow writing into an existing non-empty folder (stale weight files are
            removed; other files are replaced or kept).
        dtype: cast floating-point weights (e.g. torch.bfloat16 like the release).
        model_config: the model's build config (e.g. `cfg.model.to_dict()`), stored in
            `mpr_cma_config.json`; values that are not JSON are written as strings.

    Returns:
        The folder.

    Raises:
        FileExistsError: `folder` exists, is not empty and overwrite is False.
    """
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())) and not overwrite:
        raise FileExistsError(f"refusing to write into the non-empty folder {folder} "
                              "(pass overwrite=True)")
    state = export_sa2va_state_dict(model, dtype=dtype)
    files = write_safetensors_folder(state, folder, max_shard_size)
    model.tokenizer.save_pretrained(str(folder))
    summary = _model_summary(model, model_config, dtype)
    (folder / CONFIG_NAME).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    logger.info("saved %d tensors in %d file(s) to %s", len(state), len(files), folder)
    return folder


# ---------------------------------------------------------------------- load
def _check_vocabulary(state: dict[str, Tensor], model: nn.Module, folder: Path) -> None:
    if _EMBED_KEY in state and state[_EMBED_KEY].shape[0] != len(model.tokenizer):
        raise ValueError(
            f"{folder}: the checkpoint's vocabulary has {state[_EMBED_KEY].shape[0]} rows "
            f"({_EMBED_KEY}) but the model's tokenizer has {len(model.tokenizer)} tokens; "
            "use the tokenizer the checkpoint was trained with")


@torch.no_grad()
def load_sa2va_hf(model: nn.Module, folder: str | Path) -> LoadReport:
    """Load a Sa2VA-1B HF release, or a folder written by `save_sa2va_hf`, into `model`.

    Strict: every checkpoint key must map to a model key and every model key must be in
    the checkpoint, with two exceptions by design. LLM weights go into the base weights of
    the LoRA-wrapped LLM; every LoRA B is set to 0 (A keeps its init), so the model
    computes what the merged checkpoint computes. When the checkpoint has no `mpr_cma.`
    key (a plain Sa2VA release) the new parameters (MBA, TMC heads, text_token_fcs) keep
    their init and are reported as new; when it has any, all of them must be present.

    Args:
        model: a materialised `Sa2VAMBA` whose tokenizer already has Sa2VA's tokens.
        folder: HF folder (single file or sharded).

    Returns:
        `LoadReport`.

    Raises:
        FileNotFoundError / CorruptCheckpointError: see `read_safetensors_folder`.
        ValueError: the checkpoint's vocabulary differs from len(model.tokenizer), or the
            model is on the meta device.
        CheckpointKeyError: key or shape mismatches (checkpoint key names, listed).
    """
    _require_materialised(model, "load_sa2va_hf")
    folder = Path(folder)
    state = read_safetensors_folder(folder)
    _check_vocabulary(state, model, folder)
    mapping, expected = sa2va_key_map(model), model.state_dict()
    plain_release = not any(k.startswith(NEW_KEY_PREFIX) for k in state)
    report, to_load, missing, mismatched = LoadReport(), {}, [], []
    for key, target in mapping.items():
        if target is None or (plain_release and target.startswith(NEW_KEY_PREFIX)):
            report.new_initialised.append(key)
        elif target not in state:
            missing.append(target)
        elif state[target].shape != expected[key].shape:
            mismatched.append(f"{target} checkpoint {tuple(state[target].shape)} vs model "
                              f"{tuple(expected[key].shape)}")
        else:
            to_load[key] = state[target]
    unexpected = sorted(set(state) - {t for t in mapping.values() if t is not None})
    if missing or unexpected or mismatched:
        raise CheckpointKeyError(folder, missing, unexpected, mismatched)
    model.load_state_dict(to_load, strict=False)  # the rest: new_initialised, by design
    for layer in _peft_structure(model)[1].values():
        for adapter in layer.lora_B:
            layer.lora_B[adapter].weight.zero_()
    report.loaded = list(to_load)
    if plain_release and any(mapping[k] for k in report.new_initialised):
        logger.info("%s: plain Sa2VA checkpoint; new parameters keep their init: %s", folder,
                    sorted({k.rsplit(".", 1)[0] for k in report.new_initialised if mapping[k]}))
    return report


__all__ = ["CONFIG_NAME", "CheckpointKeyError", "CorruptCheckpointError", "INDEX_NAME",
           "LoadReport", "NEW_KEY_PREFIX", "WEIGHTS_NAME", "export_sa2va_state_dict",
           "load_sa2va_hf", "sa2va_key_map", "save_sa2va_hf", "write_safetensors_folder"]
