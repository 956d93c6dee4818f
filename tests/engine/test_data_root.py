"""replace_data_root: --data-root moves every dataset path under the config's data root."""

from pathlib import Path

import pytest
from mmengine.config import Config

from mpr_cma.engine.data_root import replace_data_root

REPO = Path(__file__).resolve().parents[2]


def test_tiny_data_config_moves_every_dataset():
    cfg = Config.fromfile(REPO / "configs/tiny/train_tiny_data.py")
    changed = replace_data_root(cfg, "/tmp/elsewhere")
    roots = [d["data_root"] for d in cfg.train_dataloader.dataset.datasets]
    assert roots == ["/tmp/elsewhere", "/tmp/elsewhere/mevis/train", "/tmp/elsewhere/llava"]
    assert cfg.data_root == "/tmp/elsewhere"
    assert "train_dataloader.dataset.datasets[1].data_root" in changed


def test_new_root_inside_the_old_one_is_not_applied_twice():
    # The 1B config shares one dataset dict between `train_dataset` and the dataloader.
    cfg = Config.fromfile(REPO / "configs/mba_1b.py")
    replace_data_root(cfg, "data/synthetic")
    roots = [d["data_root"] for d in cfg.train_dataloader.dataset.datasets]
    assert roots[0] == "data/synthetic"
    assert "data/synthetic/mevis/train" in roots
    assert not any("synthetic/synthetic" in r for r in roots)


def test_paths_outside_the_root_and_prefix_lookalikes_stay():
    cfg = Config(dict(data_root="data", train=dict(datasets=[
        dict(data_root="data/refcoco"), dict(data_root="data2/x"), dict(data_root="/abs/y")])))
    replace_data_root(cfg, "new")
    assert [d["data_root"] for d in cfg.train.datasets] == ["new/refcoco", "data2/x", "/abs/y"]


def test_bad_configs_are_named_errors():
    with pytest.raises(KeyError, match="no top-level 'data_root'"):
        replace_data_root(Config(dict(train=dict(data_root="data"))), "x")
    with pytest.raises(ValueError, match="nothing to replace"):
        replace_data_root(Config(dict(data_root="data", train=dict(data_root="other"))), "x")
