"""Every config under configs/ loads, and its method parts build with the paper defaults."""

from pathlib import Path

import pytest
from mmengine.config import Config

from mpr_cma.losses import MPRCMALoss
from mpr_cma.models import MaskBiasedAttention
from mpr_cma.registry import MODELS

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ALL_CONFIGS = sorted(p for p in CONFIGS.rglob("*.py"))


@pytest.mark.parametrize("path", ALL_CONFIGS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_config_loads(path):
    assert Config.fromfile(str(path))


def test_method_heads_build_with_paper_defaults():
    cfg = Config.fromfile(str(CONFIGS / "_base_" / "models" / "mba_heads.py"))
    mba = MODELS.build(cfg.mba)
    assert isinstance(mba, MaskBiasedAttention)
    # dim is left to SAM2Grounding in the config; 256 is also the class default
    assert (mba.dim, mba.num_heads, mba.router.top_k, mba.tau_gate) == (256, 8, 4, 1.0)
    assert mba.gamma.item() == 0.0
    criterion = MODELS.build(cfg.criterion)
    assert isinstance(criterion, MPRCMALoss)
    assert (criterion.tmc_weight, criterion.bound_weight, criterion.tmc.tau) == (0.1, 0.05, 0.15)


def test_a_leaf_override_changes_only_that_field(tmp_path):
    leaf = tmp_path / "leaf.py"
    leaf.write_text(f"_base_ = ['{CONFIGS / '_base_' / 'models' / 'mba_heads.py'}']\n"
                    "mba = dict(type='MaskBiasedFiLM', top_k=8)\n")
    cfg = Config.fromfile(str(leaf))
    film = MODELS.build(cfg.mba)
    assert type(film).__name__ == "MaskBiasedFiLM" and film.router.top_k == 8
    assert film.tau_gate == 1.0


MODEL_CONFIGS = [p for p in ALL_CONFIGS
                 if "_base_" not in p.parts and "model" in Config.fromfile(str(p))]


@pytest.mark.parametrize("path", MODEL_CONFIGS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_model_of_every_config_builds(path):
    """Tiny models are built for real; 1B ones on the meta device without weights."""
    import torch

    model_cfg = Config.fromfile(str(path)).model
    tiny = "tiny" in path.parts
    if not tiny:
        model_cfg.update(mllm_pretrained=None, tokenizer="tiny")
        model_cfg.grounding.ckpt_path = None
    with torch.device("cpu" if tiny else "meta"):
        model = MODELS.build(model_cfg)
    assert sum(p.numel() for p in model.parameters()) > 0
    expected_mba = model_cfg.grounding.get("mba") is not None
    assert (model.grounding.mba is not None) == expected_mba
