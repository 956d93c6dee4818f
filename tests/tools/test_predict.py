"""tools/predict.py on a tiny model: masks of the image / video size, overlays, attention
maps, and clear errors for an unreadable image or an empty expression."""

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from mpr_cma.checkpoint import build_model
from mpr_cma.engine.config import load_config
from mpr_cma.models.checkpoint import save_sa2va_hf

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs/tiny/sa2va_mba_tiny.py"
ANSWER = ["--answer", "It is [SEG]."]


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


predict = _tool("predict")


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory) -> Path:
    cfg = load_config(TINY).model
    folder = tmp_path_factory.mktemp("hf") / "tiny"
    save_sa2va_hf(build_model(cfg, pretrained=False), folder, model_config=cfg.to_dict())
    return folder


def _frames(n: int, h: int, w: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def test_image_masks_overlay_and_attention(hf_dir, tmp_path):
    Image.fromarray(_frames(1, 37, 50)[0]).save(tmp_path / "cat.jpg")
    out = tmp_path / "out"
    predict.main([str(hf_dir), "--image", str(tmp_path / "cat.jpg"), "--text", "the cat",
                  "--out", str(out), "--attention", *ANSWER])
    mask = np.asarray(Image.open(out / "cat.png"))
    assert mask.shape == (37, 50) and set(np.unique(mask)) <= {0, 255}
    assert np.asarray(Image.open(out / "cat_overlay.png")).shape == (37, 50, 3)
    assert np.asarray(Image.open(out / "cat_attention.png")).shape == (37, 50, 3)
    maps = np.load(out / "cat_attention.npy")
    assert maps.ndim == 3 and maps.shape[0] >= 1


@pytest.mark.parametrize("kind", ["folder", "mp4"])
def test_video_masks_per_frame_and_overlay_video(hf_dir, tmp_path, kind):
    frames = _frames(3, 32, 48)
    if kind == "folder":
        source = tmp_path / "frames"
        source.mkdir()
        for i, frame in enumerate(frames):
            Image.fromarray(frame).save(source / f"{i:05d}.png")
    else:
        source = tmp_path / "clip.mp4"
        writer = cv2.VideoWriter(str(source), cv2.VideoWriter_fourcc(*"mp4v"), 5, (48, 32))
        for frame in frames:
            writer.write(frame)
        writer.release()
    out = tmp_path / "out"
    predict.main([str(hf_dir), "--video", str(source), "--text", "the dog", "--out", str(out),
                  "--attention", "--frames", *ANSWER])
    for i in range(3):
        assert np.asarray(Image.open(out / f"{i:05d}.png")).shape == (32, 48)
        assert (out / "attention" / f"{i:05d}.png").is_file()
        assert (out / "overlay" / f"{i:05d}.png").is_file()
    capture = cv2.VideoCapture(str(out / "overlay.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    capture.release()


def test_config_with_hf_checkpoint(hf_dir, tmp_path):
    Image.fromarray(_frames(1, 30, 30)[0]).save(tmp_path / "a.png")
    predict.main([str(TINY), "--checkpoint", str(hf_dir), "--image", str(tmp_path / "a.png"),
                  "--text", "the thing", "--out", str(tmp_path / "o"), *ANSWER])
    assert np.asarray(Image.open(tmp_path / "o" / "a.png")).shape == (30, 30)


def test_unreadable_image_and_empty_expression_fail_clearly(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(SystemExit, match=f"cannot read image {bad}"):
        predict.main([str(TINY), "--image", str(bad), "--text", "the cat", "--out",
                      str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="expression .* is empty"):
        predict.main([str(TINY), "--image", str(bad), "--text", "  \t ", "--out",
                      str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="image not found"):
        predict.main([str(TINY), "--image", str(tmp_path / "nope.png"), "--text", "the cat",
                      "--out", str(tmp_path / "o")])


def test_cfg_options_reach_the_model_of_a_config():
    args = predict.parse_args([str(TINY), "--image", "x.jpg", "--text", "the cat", "--out",
                               "out", "--device", "cpu", "--cfg-options", "mba.top_k=2"])
    assert predict.load_model(args).grounding.mba.router.top_k == 2


def test_num_key_frames_defaults_to_the_config(hf_dir):
    """Sa2VA's 5 from configs/_base_/default_runtime.py, the demo config's 8, an explicit
    flag over both, and an HF folder's stored build config (the model only): 5."""
    def key_frames(*argv):
        args = predict.parse_args([*argv, "--image", "x.jpg", "--text", "the cat", "--out",
                                   "out", "--device", "cpu"])
        predict.load_model(args)
        return args.num_key_frames

    demo = ROOT / "configs" / "tiny" / "demo.py"
    assert key_frames(str(TINY)) == 5
    assert key_frames(str(demo)) == 8
    assert key_frames(str(demo), "--num-key-frames", "3") == 3
    assert key_frames(str(demo), "--cfg-options", "num_key_frames=2") == 2
    assert key_frames(str(hf_dir)) == 5
    with pytest.raises(SystemExit, match="num_key_frames must be a positive integer"):
        key_frames(str(demo), "--cfg-options", "num_key_frames=0")
    with pytest.raises(SystemExit):
        predict.parse_args([str(TINY), "--image", "x.jpg", "--text", "t", "--out", "o",
                            "--num-key-frames", "0"])
