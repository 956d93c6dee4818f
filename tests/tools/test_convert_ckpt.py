"""tools/convert_ckpt.py on a 2-rank ZeRO-2 checkpoint of the tiny training run: export to
an HF folder, import back, export again (identical tensors, identical predictions);
refusing to overwrite; corrupted files and frozen parameters left out of a checkpoint."""

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mpr_cma.checkpoint import (
    MODEL_STATES,
    CheckpointKeyError,
    CorruptCheckpointError,
    build_model,
    load_checkpoint,
    read_checkpoint,
)
from mpr_cma.checkpoint import read_safetensors_folder as read_sa2va_folder
from mpr_cma.engine.config import load_config
from mpr_cma.models.inference import predict_image
from tests.engine.test_train_e2e import ROOT, dist_train

pytestmark = pytest.mark.slow
TINY = ROOT / "configs/tiny/sa2va_mba_tiny.py"


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


convert = _tool("convert_ckpt")


@pytest.fixture(scope="module")
def zero2_run(tmp_path_factory) -> Path:
    """One 2-rank ZeRO-2 run, shortened to one checkpoint (8 samples: iterations 1-2; the
    LR warm-up must span at least one of them: warmup_ratio 0.5)."""
    work_dir = tmp_path_factory.mktemp("zero2")
    dist_train(work_dir, "--cfg-options", "train_dataloader.dataset.num_samples=8",
               "warmup_ratio=0.5")
    return work_dir


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "scene.png"
    pixels = np.random.default_rng(0).integers(0, 255, (40, 52, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _masks(model, image: Path) -> dict:
    return predict_image(model, image, "the red box", answer="It is [SEG].")


def test_zero2_round_trip_is_lossless(zero2_run, image, tmp_path, capsys):
    ckpt = zero2_run / "iter_2.pth"
    assert len(list(ckpt.glob("*optim_states.pt"))) == 2
    convert.main(["to-hf", str(zero2_run), str(tmp_path / "hf1")])  # a work dir: latest
    printed = capsys.readouterr().out
    assert "ZeRO stage 2, 2 ranks" in printed and "torch.float32" in printed
    assert "mpr_cma.grounding" in printed                        # MBA under its prefix
    convert.main(["from-hf", str(tmp_path / "hf1"), str(tmp_path / "init.pth")])
    assert (tmp_path / "init.pth" / MODEL_STATES).is_file()
    convert.main(["to-hf", str(tmp_path / "init.pth"), str(tmp_path / "hf2"),
                  "--max-shard-size", "1MB"])
    first, second = read_sa2va_folder(tmp_path / "hf1"), read_sa2va_folder(tmp_path / "hf2")
    assert len(list((tmp_path / "hf2").glob("model-*-of-*.safetensors"))) > 1  # sharded
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    # fp32 master weights from the two ZeRO shards equal the module weights (fp32 run).
    module, master = read_checkpoint(ckpt), read_checkpoint(ckpt, fp32_master=True)
    assert module.state_dict.keys() == master.state_dict.keys()
    assert all(torch.equal(module.state_dict[k], master.state_dict[k])
               for k in module.state_dict)
    # Identical predictions: the trained checkpoint, its HF export, the re-imported one.
    cfg = load_config(TINY).model
    results = []
    for source in (ckpt, tmp_path / "hf1", tmp_path / "init.pth"):
        model = build_model(cfg, pretrained=False, seed=1)
        load_checkpoint(model, source)
        results.append(_masks(model, image))
    for other in results[1:]:
        assert other["mask"].shape == (40, 52)
        assert np.array_equal(results[0]["mask"], other["mask"])
        torch.testing.assert_close(results[0]["logits"], other["logits"], rtol=1e-4,
                                   atol=1e-4)


def test_refuses_to_overwrite_unless_told(zero2_run, tmp_path):
    out = tmp_path / "hf"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(SystemExit, match="exists; pass --overwrite"):
        convert.main(["to-hf", str(zero2_run / "iter_2.pth"), str(out)])
    assert (out / "keep.txt").is_file()
    convert.main(["to-hf", str(zero2_run / "iter_2.pth"), str(out), "--overwrite"])
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()
    with pytest.raises(SystemExit, match="exists; pass --overwrite"):
        convert.main(["from-hf", str(out), str(zero2_run / "iter_2.pth")])


def test_corrupted_checkpoint_files_are_named(zero2_run, tmp_path):
    broken = tmp_path / "iter_2.pth"
    shutil.copytree(zero2_run / "iter_2.pth", broken)
    (broken / MODEL_STATES).write_bytes((broken / MODEL_STATES).read_bytes()[:1000])
    with pytest.raises(CorruptCheckpointError, match=str(broken / MODEL_STATES)):
        convert.main(["to-hf", str(broken), str(tmp_path / "hf")])
    shutil.copy(zero2_run / "iter_2.pth" / MODEL_STATES, broken / MODEL_STATES)
    shard = next(broken.glob("*optim_states.pt"))
    shard.write_bytes(b"garbage")
    with pytest.raises(CorruptCheckpointError, match=shard.name):
        read_checkpoint(broken, fp32_master=True)
    pth = tmp_path / "model.pth"
    pth.write_bytes(b"\x80\x02not a checkpoint")
    with pytest.raises(CorruptCheckpointError, match=str(pth)):
        read_checkpoint(pth)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorruptCheckpointError, match="not a checkpoint folder"):
        read_checkpoint(tmp_path / "empty")
    (tmp_path / "work" / "iter_4.pth").mkdir(parents=True)  # a save that never finished
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        read_checkpoint(tmp_path / "work")


def test_mmengine_pth_without_frozen_parameters_needs_pretrained_weights(tmp_path, capsys):
    """The tiny config names no pretrained weights: a checkpoint without its frozen
    parameters cannot be completed (tests/checkpoint/test_load.py covers the accepted case)."""
    cfg = load_config(TINY).model
    model = build_model(cfg, pretrained=False, seed=3)
    trainable = {k for k, p in model.named_parameters() if p.requires_grad}
    state = {k: v for k, v in model.state_dict().items() if k in trainable}
    torch.save({"state_dict": state, "meta": {"iter": 7}}, tmp_path / "iter_7.pth")
    with pytest.raises(CheckpointKeyError, match="none in this config"):
        convert.main(["to-hf", str(tmp_path / "iter_7.pth"), str(tmp_path / "hf"),
                      "--config", str(TINY), "--dtype", "bf16"])
    assert "read mmengine checkpoint" in capsys.readouterr().out


def test_from_hf_output_is_accepted_by_load_from(zero2_run, tmp_path):
    """The Sa2VA HF -> fine-tune flow: `from-hf` output given to training as load_from."""
    convert.main(["to-hf", str(zero2_run / "iter_2.pth"), str(tmp_path / "hf")])
    convert.main(["from-hf", str(tmp_path / "hf"), str(tmp_path / "init.pth")])
    states_file = tmp_path / "init.pth" / MODEL_STATES
    states = torch.load(states_file, map_location="cpu", weights_only=False)
    # A frozen tensor (training never changes it) marked so that only loading explains it.
    key = "mllm.vision_model.embeddings.class_embedding"
    states["module"][key] = states["module"][key] + 1.0
    torch.save(states, states_file)
    work = tmp_path / "work"
    dist_train(work, "--cfg-options", "train_dataloader.dataset.num_samples=8",
               "warmup_ratio=0.5", f"load_from={tmp_path / 'init.pth'}")
    trained = read_checkpoint(work).state_dict
    torch.testing.assert_close(trained[key], states["module"][key].float())
