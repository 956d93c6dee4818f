"""The one strict loader: a checkpoint of any kind into a model, or a model built for it.

Rules (the same for tools/test.py, predict.py, convert_ckpt.py, the app, the demo):
- an HF folder (Sa2VA layout) loads strictly through the Sa2VA key mapping
  (`mpr_cma.models.checkpoint.load_sa2va_hf`: only LoRA A and, for a plain Sa2VA release,
  the new MBA / TMC parameters keep their init);
- a training checkpoint (DeepSpeed folder, work dir, .pth) must hold every key of the
  model, except frozen parameters that the config's pretrained weights provide
  (`mllm_pretrained` for `mllm.*`, `grounding.ckpt_path` for `grounding.sam2_model.*`):
  DeepSpeed's `exclude_frozen_parameters` leaves exactly those out. They are taken from
  the pretrained files and reported. Anything else missing, any unexpected key and any
  shape mismatch is a `CheckpointKeyError` listing the keys and naming the file.
"""

import copy
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from mpr_cma.checkpoint.errors import CorruptCheckpointError
from mpr_cma.checkpoint.files import CONFIG_NAME
from mpr_cma.checkpoint.keys import check_state, load_strict
from mpr_cma.checkpoint.resolve import CheckpointInfo, resolve_checkpoint
from mpr_cma.checkpoint.training import Consolidated, read_checkpoint

logger = logging.getLogger(__name__)

# (model key prefix, config field naming the pretrained file that provides it)
PRETRAINED_SOURCES = (("mllm.", "mllm_pretrained"),
                      ("grounding.sam2_model.", "grounding.ckpt_path"))


@dataclass
class LoadResult:
    """What a load did.

    Attributes:
        info: the resolved checkpoint (kind, path, weight files, sha256).
        consolidated: the training checkpoint read (meta, ZeRO stage, ...); None for HF.
        hf_report: `LoadReport` of an HF folder; None for a training checkpoint.
        from_pretrained: frozen parameters absent from a training checkpoint, taken from
            the config's pretrained weights.
    """

    info: CheckpointInfo
    consolidated: Consolidated | None = None
    hf_report: object | None = None
    from_pretrained: list[str] = field(default_factory=list)


def _config_value(model_cfg, dotted: str):
    value = model_cfg
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) or hasattr(value, "get") else None
        if value is None:
            return None
    return value


def pretrained_prefixes(model_cfg) -> tuple[str, ...]:
    """Model key prefixes whose weights the config's pretrained files provide."""
    return tuple(prefix for prefix, key in PRETRAINED_SOURCES if _config_value(model_cfg, key))


def frozen_keys(model: nn.Module, prefixes: tuple[str, ...]) -> set[str]:
    """Names of the frozen parameters of `model` under `prefixes` (tied names included)."""
    return {name for name, p in model.named_parameters(remove_duplicate=False)
            if not p.requires_grad and name.startswith(prefixes)}


def _note(prefixes: tuple[str, ...]) -> str:
    given = ", ".join(f"{key} for {prefix}*" for prefix, key in PRETRAINED_SOURCES
                      if prefix in prefixes) or "none in this config"
    return ("a training checkpoint may only lack frozen parameters that the config's "
            f"pretrained weights provide ({given})")


def load_checkpoint(model: nn.Module, path: str | Path | CheckpointInfo,
                    pretrained: tuple[str, ...] = (), fp32_master: bool = False) -> LoadResult:
    """Load a checkpoint of any kind into a built `model`, strictly (module docstring).

    Args:
        model: a materialised `Sa2VAMBA`.
        path: HF folder, DeepSpeed folder, work dir or .pth file (or its CheckpointInfo).
        pretrained: key prefixes where `model` already holds the config's pretrained
            weights (`pretrained_prefixes(cfg)` when it was built with them): its frozen
            parameters there may be absent from a training checkpoint.
        fp32_master: for DeepSpeed, rebuild fp32 weights from the ZeRO shards.

    Raises:
        FileNotFoundError, CorruptCheckpointError: a missing / unreadable file (named).
        CheckpointKeyError: keys or shapes that do not match (listed, file named).
        ValueError: an HF folder whose vocabulary differs from the model's tokenizer.
    """
    info = path if isinstance(path, CheckpointInfo) else resolve_checkpoint(path)
    if info.kind == "hf":
        from mpr_cma.models.checkpoint import load_sa2va_hf

        report = load_sa2va_hf(model, info.path)
        if report.new_initialised:
            logger.info("%s: %d parameters not in the checkpoint keep their init (LoRA A, or "
                        "the new MBA/TMC parameters of a plain Sa2VA release)", info.path,
                        len(report.new_initialised))
        return LoadResult(info, hf_report=report)
    found = read_checkpoint(info, fp32_master=fp32_master)
    filled = load_strict(model, found.state_dict, info.path, frozen_keys(model, pretrained),
                         _note(pretrained))
    if filled:
        logger.info("%s: %d frozen parameters are not in the checkpoint; taken from the "
                    "config's pretrained weights", info.path, len(filled))
    return LoadResult(info, consolidated=found, from_pretrained=filled)


def build_model(model_cfg, pretrained: bool = True, tokenizer: str | Path | None = None,
                device: str | torch.device = "cpu", seed: int = 0) -> nn.Module:
    """Build the model of a config (`cfg.model`), optionally without its pretrained weights.

    Args:
        model_cfg: the model's config dict.
        pretrained: load the config's pretrained weights (`mllm_pretrained`,
            `grounding.ckpt_path`); False sets them to None (random init).
        tokenizer: replace the config's tokenizer (e.g. the folder of an HF export).
        device: "meta" to get key names, shapes and frozen flags only.
        seed: seed of the random init (the global RNG state is restored afterwards).
    """
    import mpr_cma.models  # noqa: F401  (registers the model classes)
    from mpr_cma.registry import MODELS

    cfg = copy.deepcopy(dict(model_cfg))
    if not pretrained:
        cfg["mllm_pretrained"] = None
        if isinstance(cfg.get("grounding"), dict):
            cfg["grounding"] = {**cfg["grounding"], "ckpt_path": None}
    if tokenizer is not None:
        cfg["tokenizer"] = str(tokenizer)
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(seed)
        return MODELS.build(cfg)


def build_and_load(model_cfg, path: str | Path | CheckpointInfo,
                   tokenizer: str | Path | None = None, seed: int = 0,
                   fp32_master: bool = False, found: Consolidated | None = None
                   ) -> tuple[nn.Module, LoadResult]:
    """Build `model_cfg`'s model for checkpoint `path` and load it (module docstring).

    The model is built without its pretrained weights (the checkpoint replaces them),
    unless a training checkpoint lacks frozen parameters that they provide; the keys are
    checked on a meta-device build first, so a mismatch fails before any weight is read.

    Args:
        model_cfg: the model's config dict.
        path: HF folder, DeepSpeed folder, work dir or .pth file.
        tokenizer: replace the config's tokenizer (an HF export's own folder).
        seed: seed of the random init of what the checkpoint does not set (LoRA A, new
            parameters of a plain Sa2VA release).
        fp32_master: for DeepSpeed, rebuild fp32 weights from the ZeRO shards.
        found: the training checkpoint already read by `read_checkpoint` (not read again).

    Returns:
        (the model on CPU, `LoadResult`).

    Raises:
        As `load_checkpoint`.
    """
    info = path if isinstance(path, CheckpointInfo) else resolve_checkpoint(path)
    if info.kind == "hf":
        model = build_model(model_cfg, pretrained=False, tokenizer=tokenizer, seed=seed)
        return model, load_checkpoint(model, info)
    if found is None:
        found = read_checkpoint(info, fp32_master=fp32_master)
    prefixes = pretrained_prefixes(model_cfg)
    shapes = build_model(model_cfg, pretrained=False, tokenizer=tokenizer, device="meta")
    missing = check_state(shapes.state_dict(), found.state_dict, info.path,
                          frozen_keys(shapes, prefixes), _note(prefixes))
    model = build_model(model_cfg, pretrained=bool(missing), tokenizer=tokenizer, seed=seed)
    filled = load_strict(model, found.state_dict, info.path,
                         frozen_keys(model, prefixes) if missing else (), _note(prefixes))
    if filled:
        logger.info("%s: %d frozen parameters are not in the checkpoint; taken from the "
                    "config's pretrained weights", info.path, len(filled))
    return model, LoadResult(info, consolidated=found, from_pretrained=filled)


def stored_model_config(folder: str | Path) -> dict | None:
    """The build config `save_sa2va_hf` stored in `mpr_cma_config.json`, else None.

    Raises:
        CorruptCheckpointError: the file cannot be parsed.
    """
    import json

    file = Path(folder) / CONFIG_NAME
    if not file.is_file():
        return None
    try:
        return json.loads(file.read_text()).get("model_config")
    except json.JSONDecodeError as err:
        raise CorruptCheckpointError(f"cannot read {file}: {err}") from err


def load_model_config(config: str | Path | None = None, meta: dict | None = None,
                      cfg_options: dict | None = None):
    """The effective config (`load_config`) of a file, else of a checkpoint's `meta["cfg"]`.

    `custom_imports` are imported (failures only warn), so project models register.

    Args:
        config: a config file.
        meta: a training checkpoint's meta (its "cfg" text is the resolved config).
        cfg_options: `--cfg-options` overrides ({"dotted.key": value}).

    Raises:
        ValueError: neither is available.
    """
    from mmengine.utils import import_modules_from_strings

    from mpr_cma.engine.config import load_config

    if config is not None:
        cfg = load_config(config, cfg_options, import_custom_modules=False)
    elif meta and isinstance(meta.get("cfg"), str):
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / "checkpoint_cfg.py"
            file.write_text(meta["cfg"])
            cfg = load_config(file, cfg_options, import_custom_modules=False)
    else:
        raise ValueError("no config: pass --config (the checkpoint does not store one)")
    if cfg.get("custom_imports"):
        imports = dict(cfg.custom_imports)
        imports["allow_failed_imports"] = True
        import_modules_from_strings(**imports)
    return cfg
