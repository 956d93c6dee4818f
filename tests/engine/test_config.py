"""load_config: late-bound references, writes through references, --cfg-options, errors."""

from pathlib import Path

import pytest

from mpr_cma.engine.config import (
    ConfigReferenceError,
    load_config,
    parse_cfg_options,
    unused_fields,
)

BASE = """
max_epochs = 1
warmup_ratio = 0.05
data_root = 'data'
mba = dict(type='X', top_k=4, tau=1.0)
alias = '${mba}'
_helper = dict(root='${data_root}/mevis')      # file-local: not a field
model = dict(grounding=dict(mba='${mba}', other='${alias}'), tokenizer='${data_root}/tok')
param_scheduler = [dict(end='${warmup_ratio * max_epochs}'), dict(end='${max_epochs}')]
train_cfg = dict(max_epochs='${max_epochs}')
train_dataloader = dict(dataset=dict(kind='video', **_helper))
literal = 'costs $${x}'
"""


@pytest.fixture
def write(tmp_path):
    def write(name: str, text: str):
        path = tmp_path / name
        path.write_text(text)
        return path
    write("base.py", BASE)
    return write


def test_references_resolve_to_values_of_any_type(write):
    cfg = load_config(write("leaf.py", "_base_ = ['./base.py']\n"))
    assert cfg.model.grounding.mba == {"type": "X", "top_k": 4, "tau": 1.0}
    assert cfg.model.grounding.other == cfg.mba
    assert cfg.model.tokenizer == "data/tok" and cfg.train_dataloader.dataset.root == "data/mevis"
    assert cfg.param_scheduler[0].end == pytest.approx(0.05) and cfg.param_scheduler[1].end == 1
    assert cfg.literal == "costs ${x}"
    assert "_helper" not in cfg
    cfg.model.grounding.mba.top_k = 99   # each reference is its own copy
    assert cfg.mba.top_k == 4


def test_a_top_level_knob_set_in_a_leaf_reaches_every_use(write):
    cfg = load_config(write("leaf.py", "_base_ = ['./base.py']\nmba = dict(top_k=8)\n"
                                       "max_epochs = 3\ndata_root = '/x'\n"))
    assert cfg.model.grounding.mba.top_k == 8 and cfg.model.grounding.other.top_k == 8
    assert cfg.model.grounding.mba.tau == 1.0          # the other fields stay
    assert cfg.train_cfg.max_epochs == 3 and cfg.param_scheduler[1].end == 3
    assert cfg.param_scheduler[0].end == pytest.approx(0.15)
    assert cfg.train_dataloader.dataset.root == "/x/mevis" and cfg.model.tokenizer == "/x/tok"


def test_a_nested_write_through_a_reference_goes_to_its_source(write):
    leaf = write("leaf.py", "_base_ = ['./base.py']\n"
                            "model = dict(grounding=dict(mba=dict(top_k=8)))\n"
                            "train_cfg = dict(max_epochs=2)\n")
    cfg = load_config(leaf)
    assert cfg.mba.top_k == 8 and cfg.model.grounding.other.top_k == 8   # one source
    assert cfg.max_epochs == 2 and cfg.param_scheduler[1].end == 2
    # A dict merges through an alias (other -> alias -> mba) into mba; None replaces the
    # field it names (alias), and a top-level field is a knob of its own.
    cfg = load_config(write("alias.py", "_base_ = ['./base.py']\n"
                                        "model = dict(grounding=dict(other=dict(tau=3)))\n"))
    assert cfg.mba.tau == 3 and cfg.model.grounding.other.tau == 3
    cfg = load_config(write("none.py", "_base_ = ['./base.py']\n"
                                       "model = dict(grounding=dict(other=None))\n"))
    assert cfg.alias is None and cfg.model.grounding.other is None and cfg.mba.top_k == 4
    cfg = load_config(write("top.py", "_base_ = ['./base.py']\nalias = dict(top_k=1)\n"))
    assert cfg.model.grounding.other == {"top_k": 1} and cfg.mba.top_k == 4


def test_cfg_options_write_through_references_too(write):
    leaf = write("leaf.py", "_base_ = ['./base.py']\n")
    cfg = load_config(leaf, {"model.grounding.mba.tau": 2.0, "train_cfg.max_epochs": 5})
    assert cfg.mba.tau == 2.0 and cfg.model.grounding.mba.tau == 2.0
    assert cfg.max_epochs == 5 and cfg.param_scheduler[1].end == 5
    cfg = load_config(leaf, ["param_scheduler.0.end=${max_epochs / 2}", "data_root=/y"])
    assert cfg.param_scheduler[0].end == 0.5 and cfg.train_dataloader.dataset.root == "/y/mevis"


def test_conflicting_writes_and_lost_merges_are_errors(write):
    both = write("both.py", "_base_ = ['./base.py']\nmax_epochs = 3\n"
                            "train_cfg = dict(max_epochs=4)\n")
    with pytest.raises(ConfigReferenceError, match="set only max_epochs"):
        load_config(both)
    merge = write("merge.py", "_base_ = ['./base.py']\n"
                              "model = dict(tokenizer=dict(name='x'))\n")
    with pytest.raises(ConfigReferenceError, match="merge.py: model.tokenizer.*set the fields"):
        load_config(merge)
    none = write("none.py", "_base_ = ['./base.py']\nmba = None\n")
    with pytest.raises(ConfigReferenceError, match="_delete_"):   # mmengine's rule, named
        load_config(none, {"mba.top_k": 2})


def test_bad_references_name_the_key(write):
    with pytest.raises(ConfigReferenceError, match=r"model.x: .*names 'nope'"):
        load_config(write("a.py", "model = dict(x='${nope}')\n"))
    with pytest.raises(ConfigReferenceError, match="cycle: a -> b -> a"):
        load_config(write("b.py", "a = '${b}'\nb = '${a}'\n"))
    with pytest.raises(ConfigReferenceError, match=r"x: .*ZeroDivisionError"):
        load_config(write("c.py", "x = '${1 / 0}'\n"))
    with pytest.raises(ConfigReferenceError, match="write '\\$\\{x\\}' instead"):
        load_config(write("d.py", "_base_ = ['./base.py']\ny = {{_base_.max_epochs}}\n"))


def test_cfg_options_must_name_a_live_field(write):
    leaf = write("leaf.py", "_base_ = ['./base.py']\nunread = 1\n")
    with pytest.raises(ConfigReferenceError, match="max_epoch: not a field"):
        load_config(leaf, {"max_epoch": 2})
    with pytest.raises(ConfigReferenceError, match="unread: nothing in leaf.py reads"):
        load_config(leaf, {"unread": 2})
    assert load_config(leaf, {"work_dir": "w"}).work_dir == "w"   # a runner field
    assert unused_fields(leaf) == ["literal", "unread"]


KEYED = """
repeats = dict(a=1, b=2)
datasets = [dict(name='a', repeats='${repeats["a"]}'), dict(name='b', repeats='${repeats["b"]}')]
"""


def test_a_dict_knob_read_key_by_key_rejects_a_key_nothing_reads(tmp_path):
    (tmp_path / "keyed.py").write_text(KEYED)
    leaf = tmp_path / "leaf.py"
    leaf.write_text("_base_ = ['./keyed.py']\nrepeats = dict(b=5)\n")
    assert [d.repeats for d in load_config(leaf).datasets] == [1, 5]
    leaf.write_text("_base_ = ['./keyed.py']\nrepeats = dict(bb=5)\n")   # misspelt key
    with pytest.raises(ConfigReferenceError, match=r"repeats\.bb .*read: a, b"):
        load_config(leaf)
    assert unused_fields(leaf) == ["datasets", "repeats.bb"]   # datasets: no runner reads it
    with pytest.raises(ConfigReferenceError, match=r"repeats\.c"):
        load_config(tmp_path / "keyed.py", ["repeats.c=1"])
    # A field also read whole may hold keys no reference names.
    (tmp_path / "whole.py").write_text(KEYED + "everything = '${repeats}'\n")
    assert load_config(tmp_path / "whole.py", ["repeats.c=1"]).everything.c == 1


def test_parse_cfg_options():
    assert parse_cfg_options(["a.b=1", "c=x,y", "d=None"]) == {
        "a": {"b": 1}, "c": ["x", "y"], "d": None}
    assert parse_cfg_options({"a.b": 1, "a.c": 2}) == {"a": {"b": 1, "c": 2}}
    with pytest.raises(ValueError, match="key=value"):
        parse_cfg_options(["novalue"])


def test_no_code_reads_a_config_past_load_config():
    """`Config.fromfile` leaves late-bound `${...}` references unresolved, so a script that
    reads a shipped config with it builds a model from reference strings (a checkpoint path
    "${pretrained_root ...}" once). Every reader goes through `load_config`."""
    root = Path(__file__).resolve().parents[2]
    readers = [str(p.relative_to(root)) for folder in ("mpr_cma", "tools", "scripts", "projects",
                                                        "configs", "tests")
               for p in (root / folder).rglob("*.py")
               if "Config.fromfile(" in p.read_text(encoding="utf-8")
               and p.name != "config.py" and p != Path(__file__).resolve()]
    assert readers == [], f"use mpr_cma.engine.config.load_config in: {readers}"


def test_config_num_key_frames_reads_and_checks_the_field():
    from mpr_cma.engine.config import SA2VA_NUM_KEY_FRAMES, config_num_key_frames
    assert config_num_key_frames({}) == SA2VA_NUM_KEY_FRAMES == 5
    assert config_num_key_frames({"num_key_frames": 8}) == 8
    for bad in (0, -1, "5", True, 2.0):
        with pytest.raises(ValueError, match=r"leaf.py: num_key_frames must be a positive"):
            config_num_key_frames({"num_key_frames": bad}, "leaf.py")
