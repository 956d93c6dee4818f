"""mpr_cma.apis.load_inference_model: the checkpoint is loaded by tools/test.py's code
(strict, every kind), and importing mpr_cma.apis / asking tools/app.py --help imports no
torch, transformers or gradio."""

import subprocess
import sys

import pytest
import torch

from mpr_cma.apis import load_inference_model

from .conftest import ROOT, TINY


def test_pth_checkpoint_is_loaded_and_described(tiny_model, tmp_path):
    state = {k: v.clone() for k, v in tiny_model.model.state_dict().items()}
    key = next(k for k in state if k.startswith("grounding.mba") and state[k].is_floating_point())
    state[key] += 0.25  # differs from the random init (seed 0) of a fresh build
    torch.save({"state_dict": state}, tmp_path / "tiny.pth")
    loaded = load_inference_model(TINY, tmp_path / "tiny.pth", device="cpu")
    assert loaded.checkpoint_kind == "pth" and loaded.checkpoint == str(tmp_path / "tiny.pth")
    torch.testing.assert_close(loaded.model.state_dict()[key], state[key])
    assert loaded.has_mba and not loaded.model.training
    assert loaded.describe() == f"sa2va_mba_tiny.py, {tmp_path / 'tiny.pth'} (pth), MBA, on cpu"


def test_missing_checkpoint_fails_before_building(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*nope.pth"):
        load_inference_model(TINY, tmp_path / "nope.pth", device="cpu")


def _imported(code: list[str]) -> set[str]:
    """Top-level modules that `python3 -X importtime CODE...` imports."""
    run = subprocess.run([sys.executable, "-X", "importtime", *code], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return {line.split("|")[-1].strip().split(".")[0] for line in run.stderr.splitlines()
            if line.startswith("import time:")}


@pytest.mark.parametrize("code", [["-c", "import mpr_cma.apis"], ["tools/app.py", "--help"]],
                         ids=["import", "app-help"])
def test_no_heavy_import_before_use(code):
    heavy = _imported(code) & {"torch", "transformers", "gradio", "mmengine", "cv2"}
    assert heavy == set(), heavy
    assert {"mpr_cma"} <= _imported(["-c", "import mpr_cma.apis.media"])


def _app():
    import importlib.util

    spec = importlib.util.spec_from_file_location("app", ROOT / "tools" / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    return app


def test_app_frame_cap_default_is_the_api_one():
    from mpr_cma.apis.media import DEFAULT_MAX_FRAMES

    app = _app()
    assert app.DEFAULT_MAX_FRAMES == DEFAULT_MAX_FRAMES
    assert app.parse_args(["c.py", "--checkpoint", "x"]).max_frames == DEFAULT_MAX_FRAMES


@pytest.mark.parametrize("extra, message", [
    (["--checkpoint", "nope.pth"], "checkpoint not found: nope.pth"),
    (["--checkpoint", str(TINY), "--cfg-options", "no_such_knob=1"], "no_such_knob"),
])
def test_app_refuses_a_bad_model_before_serving(extra, message, caplog):
    assert _app().main([str(TINY), *extra]) == 1
    assert message in caplog.text


def test_the_configs_num_key_frames_is_the_request_default(tmp_path):
    demo = ROOT / "configs" / "tiny" / "demo.py"
    assert load_inference_model(TINY, None, device="cpu").num_key_frames == 5
    loaded = load_inference_model(demo, None, device="cpu")
    assert loaded.num_key_frames == 8
    with pytest.raises(ValueError, match="num_key_frames must be a positive integer"):
        load_inference_model(demo, None, device="cpu", cfg_options=["num_key_frames=0"])


def test_app_key_frames_default_to_the_model_config():
    app = _app()
    assert app.parse_args(["c.py", "--checkpoint", "x"]).num_key_frames is None
    with pytest.raises(SystemExit):
        app.parse_args(["c.py", "--checkpoint", "x", "--num-key-frames", "0"])
