"""The one checkpoint loader (mpr_cma.checkpoint): every kind resolves the same way for
every tool; a training checkpoint may lack exactly the frozen parameters that the config's
pretrained weights provide, and nothing else; tools/test.py's loader accepts what
convert_ckpt.py and predict.py accept. Small checkpoints of the tiny model are written here."""

import importlib.util
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from mpr_cma.checkpoint import (
    CheckpointKeyError,
    CorruptCheckpointError,
    build_and_load,
    build_model,
    load_checkpoint,
    pretrained_prefixes,
    read_safetensors_folder,
    resolve_checkpoint,
)
from mpr_cma.checkpoint.files import MODEL_STATES
from mpr_cma.engine.config import load_config
from mpr_cma.engine.evaluate import build_eval_model
from mpr_cma.models.checkpoint import save_sa2va_hf
from mpr_cma.registry import MODELS

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny" / "sa2va_mba_tiny.py"


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    """`pretrained_root` of the tiny model: an InternVL HF folder and a SAM-2 file, in the
    layout configs/_base_/models/sa2va_mba_1b.py reads."""
    root = tmp_path_factory.mktemp("pretrained")
    cfg = load_config(TINY).model
    torch.manual_seed(11)
    mllm = MODELS.build(cfg.mllm)
    (root / "InternVL2_5-1B").mkdir()
    save_file({k: v.clone().contiguous() for k, v in mllm.state_dict().items()},
              str(root / "InternVL2_5-1B" / "model.safetensors"))
    torch.manual_seed(12)
    grounding = MODELS.build(cfg.grounding)
    torch.save({"model": grounding.sam2_model.state_dict()}, root / "sam2_hiera_large.pt")
    return root


@pytest.fixture(scope="module")
def trained(pretrained, tmp_path_factory) -> dict:
    """A 'trained' model over the pretrained weights and its checkpoint without the frozen
    parameters (DeepSpeed's exclude_frozen_parameters), as .pth and DeepSpeed folder."""
    root = tmp_path_factory.mktemp("trained")
    options = {"pretrained_root": str(pretrained)}
    cfg = load_config(TINY, options).model
    model = build_model(cfg, pretrained=True, seed=5)
    with torch.no_grad():  # move the trainable weights away from any init
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.01)
    trainable = {k for k, p in model.named_parameters() if p.requires_grad}
    frozen = [k for k, p in model.named_parameters() if not p.requires_grad]
    state = {k: v for k, v in model.state_dict().items() if k not in frozen}
    assert trainable <= set(state) and frozen
    torch.save({"state_dict": state, "meta": {"iter": 7}}, root / "iter_7.pth")
    (root / "iter_8.pth").mkdir()
    torch.save({"module": state}, root / "iter_8.pth" / MODEL_STATES)
    return {"model": model, "state": state, "frozen": frozen, "root": root,
            "options": options, "cfg": cfg}


def _equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_pretrained_prefixes_follow_the_config(trained):
    assert pretrained_prefixes(trained["cfg"]) == ("mllm.", "grounding.sam2_model.")
    assert pretrained_prefixes(load_config(TINY).model) == ()
    assert all(k.startswith(("mllm.", "grounding.sam2_model.")) for k in trained["frozen"])


@pytest.mark.parametrize("name", ["iter_7.pth", "iter_8.pth"])
def test_frozen_parameters_come_from_the_pretrained_weights(trained, name):
    model, result = build_and_load(trained["cfg"], trained["root"] / name, seed=99)
    assert _equal(model, trained["model"])  # frozen values are the pretrained files'
    assert sorted(result.from_pretrained) == sorted(trained["frozen"])
    assert result.info.kind == ("pth" if name.endswith("7.pth") else "deepspeed")


def test_a_missing_trainable_parameter_is_refused(trained, tmp_path):
    state = dict(trained["state"])
    key = "text_hidden_fcs.0.weight"
    del state[key]
    torch.save({"state_dict": state}, tmp_path / "lacks.pth")
    with pytest.raises(CheckpointKeyError, match=r"lacks\.pth.*missing keys \(1\): "
                                                 r"text_hidden_fcs\.0\.weight") as err:
        build_and_load(trained["cfg"], tmp_path / "lacks.pth")
    assert err.value.missing == [key] and err.value.file == tmp_path / "lacks.pth"


def test_frozen_parameters_without_pretrained_weights_are_refused(trained):
    """Without pretrained files the frozen values cannot be recovered (a random init is
    not the one trained on): refused, whichever entry point."""
    plain = load_config(TINY).model
    with pytest.raises(CheckpointKeyError, match="none in this config") as err:
        build_and_load(plain, trained["root"] / "iter_7.pth")
    assert sorted(err.value.missing) == sorted(trained["frozen"])
    with pytest.raises(CheckpointKeyError, match="none in this config"):
        load_checkpoint(build_model(plain, pretrained=False), trained["root"] / "iter_7.pth")


def test_unexpected_and_mis_shaped_keys_are_refused(trained, tmp_path):
    state = dict(trained["state"])
    state["extra.weight"] = torch.zeros(2)
    key = "text_hidden_fcs.0.bias"
    state[key] = torch.zeros(3)
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(CheckpointKeyError) as err:
        build_and_load(trained["cfg"], tmp_path / "odd.pth")
    assert err.value.unexpected == ["extra.weight"]
    assert err.value.mismatched[0].startswith(f"{key} checkpoint (3,) vs model")


def test_test_py_accepts_what_convert_and_predict_accept(trained, tmp_path, capsys):
    """The checkpoint without frozen parameters: convert_ckpt.py to-hf exports it,
    predict.py's loader and tools/test.py's build_eval_model load the same model."""
    ckpt = trained["root"] / "iter_7.pth"
    # a leaf config naming the pretrained weights, as a user's copy of the 1B config does
    leaf = tmp_path / "leaf.py"
    leaf.write_text(f"_base_ = ['{TINY}']\npretrained_root = "
                    f"{trained['options']['pretrained_root']!r}\n")
    _tool("convert_ckpt").main(["to-hf", str(ckpt), str(tmp_path / "hf"), "--config",
                                str(leaf), "--dtype", "bf16"])
    printed = capsys.readouterr().out
    assert "frozen parameters not in the checkpoint were taken from the config" in printed
    exported = read_safetensors_folder(tmp_path / "hf")
    assert {v.dtype for v in exported.values()} == {torch.bfloat16}
    predict = _tool("predict")
    args = predict.parse_args([str(leaf), "--checkpoint", str(ckpt), "--image", "x.png",
                               "--text", "the dog", "--out", str(tmp_path / "out"),
                               "--device", "cpu"])
    predicted = predict.load_model(args)
    evaluated, info = build_eval_model(leaf, ckpt, cfg_options=None)
    assert info["checkpoint_kind"] == "pth" and info["checkpoint_sha256"]
    assert _equal(predicted, trained["model"]) and _equal(evaluated, trained["model"])
    # and the HF export loads through the same loader as well
    hf_model, hf_info = build_eval_model(TINY, tmp_path / "hf")
    assert hf_info["checkpoint_kind"] == "hf" and _equal(hf_model, predict.load_model(
        predict.parse_args([str(tmp_path / "hf"), "--image", "x.png", "--text", "the dog",
                            "--out", str(tmp_path / "out"), "--device", "cpu"])))


def test_resolve_kinds_and_errors(trained, tmp_path):
    model = trained["model"]
    save_sa2va_hf(model, tmp_path / "hf")
    assert resolve_checkpoint(tmp_path / "hf").kind == "hf"
    assert resolve_checkpoint(trained["root"] / "iter_8.pth").kind == "deepspeed"
    work = resolve_checkpoint(trained["root"])  # a work dir: its latest complete checkpoint
    assert work.path.name == "iter_8.pth" and work.given == trained["root"]
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        resolve_checkpoint(tmp_path / "nowhere")
    (tmp_path / "plain").mkdir()
    with pytest.raises(CorruptCheckpointError, match="not a checkpoint folder"):
        resolve_checkpoint(tmp_path / "plain")
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CorruptCheckpointError, match="broken.pth"):
        load_checkpoint(model, tmp_path / "broken.pth")
