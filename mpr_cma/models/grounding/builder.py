"""Build SAM-2 from the `sam2` package's hydra configs and load `sam2_hiera_large.pt`-style
checkpoints strictly.

The real model uses `configs/sam2/sam2_hiera_l.yaml` unchanged (as Sa2VA-1B does). Tiny CPU
models are the same config shrunk by hydra overrides (`tiny_sam2_overrides`), so no model
yaml is copied into this repository.
"""

from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import torch
from sam2.build_sam import build_sam2
from torch import nn

from mpr_cma.checkpoint.errors import CorruptCheckpointError
from mpr_cma.checkpoint.files import torch_load
from mpr_cma.checkpoint.keys import load_strict
from mpr_cma.models.grounding.sam2_base import LanguagePromptSAM2

DEFAULT_SAM2_CONFIG = "configs/sam2/sam2_hiera_l.yaml"
_TARGET = f"{LanguagePromptSAM2.__module__}.{LanguagePromptSAM2.__qualname__}"


def image_size_overrides(image_size: int) -> list[str]:
    """Hydra overrides that make a SAM-2 config run at `image_size` pixels.

    SAM-2 needs the input size in two places: `model.image_size` (prompt encoder grid,
    mask upsampling) and the RoPE tables of memory attention, sized for the stride-16
    feature map (64 x 64 at 1024 px).
    """
    if image_size % 16 != 0 or image_size < 32:
        raise ValueError(f"image_size must be a multiple of 16 and >= 32, got {image_size}")
    grid = image_size // 16
    attn = "++model.memory_attention.layer"
    return [
        f"++model.image_size={image_size}",
        f"{attn}.self_attention.feat_sizes=[{grid},{grid}]",
        f"{attn}.cross_attention.feat_sizes=[{grid},{grid}]",
    ]


def tiny_sam2_overrides(dim: int = 32, mem_dim: int = 16, trunk_dim: int = 8) -> list[str]:
    """Overrides that shrink `sam2_hiera_l.yaml` to a CPU-sized model (~0.65 M parameters).

    Hiera: 4 stages of 1, 1, 2, 1 blocks, widths trunk_dim * (1, 2, 4, 8), one global
    attention block; neck, memory attention and mask decoder width `dim`; memory width
    `mem_dim`. The mask decoder's MLP (2048) and IoU head (256) widths are hard-coded in
    `SAM2Base._build_sam_heads` and stay as they are.

    Args:
        dim: SAM-2 hidden width C (256 in the real model); must be divisible by 8 (the
            decoder's 8 heads) and by `mem_dim`.
        mem_dim: memory encoder output width (64 in the real model).
        trunk_dim: Hiera stage-1 width (144 in Hiera-L).
    """
    if dim % 8 or dim % mem_dim:
        raise ValueError(f"dim ({dim}) must be divisible by 8 and by mem_dim ({mem_dim})")
    trunk = "++model.image_encoder.trunk"
    neck = "++model.image_encoder.neck"
    attn = "++model.memory_attention"
    mem = "++model.memory_encoder"
    channels = [trunk_dim * 8, trunk_dim * 4, trunk_dim * 2, trunk_dim]
    return [
        f"{trunk}.embed_dim={trunk_dim}",
        f"{trunk}.num_heads=1",
        f"{trunk}.stages=[1,1,2,1]",
        f"{trunk}.global_att_blocks=[3]",
        # Stage-1 window 8 must tile the stage-1 grid (image_size / 4).
        f"{trunk}.window_spec=[8,4,4,2]",
        f"{trunk}.window_pos_embed_bkg_spatial_size=[4,4]",
        f"{neck}.backbone_channel_list=[{','.join(map(str, channels))}]",
        f"{neck}.d_model={dim}",
        f"{neck}.position_encoding.num_pos_feats={dim}",
        f"{attn}.d_model={dim}",
        f"{attn}.num_layers=1",
        f"{attn}.layer.d_model={dim}",
        f"{attn}.layer.dim_feedforward={2 * dim}",
        f"{attn}.layer.self_attention.embedding_dim={dim}",
        f"{attn}.layer.cross_attention.embedding_dim={dim}",
        f"{attn}.layer.cross_attention.kv_in_dim={mem_dim}",
        f"{mem}.out_dim={mem_dim}",
        f"{mem}.in_dim={dim}",
        f"{mem}.position_encoding.num_pos_feats={mem_dim}",
        f"{mem}.mask_downsampler.embed_dim={dim}",
        f"{mem}.fuser.layer.dim={dim}",
        f"{mem}.fuser.num_layers=1",
    ]


def build_language_sam2(
    config: str = DEFAULT_SAM2_CONFIG,
    image_size: int = 1024,
    hydra_overrides: Sequence[str] = (),
    ckpt_path: str | PathLike | None = None,
) -> LanguagePromptSAM2:
    """Instantiate `LanguagePromptSAM2` from a `sam2` package config, optionally load weights.

    Uses `sam2.build_sam.build_sam2` (hydra compose + instantiate) with the class target
    overridden, without its inference post-processing overrides (Sa2VA disables them too).

    Args:
        config: config name inside the `sam2` package, e.g. "configs/sam2/sam2_hiera_l.yaml".
        image_size: input resolution S (1024 for the real model).
        hydra_overrides: extra overrides applied last (e.g. `tiny_sam2_overrides()`).
        ckpt_path: `{"model": state_dict}` checkpoint; None keeps the random init.

    Returns:
        The model in train mode, fp32, on CPU (or on meta inside a meta device context).
    """
    overrides = [f"++model._target_={_TARGET}", *image_size_overrides(image_size)]
    overrides += list(hydra_overrides)
    # Hiera's constructor calls .item() on a tensor, which fails on the meta device. Inside
    # `with torch.device("meta")` (counting the 1B model's parameters without weights) SAM-2
    # is therefore built on CPU (~0.9 GB for Hiera-L, briefly) and then moved to meta.
    target = torch.empty(0).device
    with torch.device("cpu"):
        model = build_sam2(
            config,
            ckpt_path=None,  # loaded below with a strict, explicit key check
            device="cpu",
            mode="train",
            hydra_overrides_extra=overrides,
            apply_postprocessing=False,
        )
    if target.type == "meta":
        if ckpt_path is not None:
            raise ValueError("a SAM-2 checkpoint cannot be loaded into a meta-device model")
        return model.to(target)
    if ckpt_path is not None:
        load_sam2_checkpoint(model, ckpt_path)
    return model


def load_sam2_checkpoint(model: nn.Module, ckpt_path: str | PathLike) -> None:
    """Load a `{"model": state_dict}` SAM-2 checkpoint; every key must match exactly.

    Raises:
        FileNotFoundError: the file does not exist (the message names the path).
        CorruptCheckpointError: the file cannot be read, or is not a dict with a "model"
            state dict (named).
        CheckpointKeyError: missing or unexpected keys or shapes (all listed); nothing is
            loaded.
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"SAM-2 checkpoint not found: {path}")
    checkpoint = torch_load(path, weights_only=True)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        raise CorruptCheckpointError(f"{path}: expected a SAM-2 checkpoint "
                                     "{'model': state_dict}")
    load_strict(model, checkpoint["model"], path)
