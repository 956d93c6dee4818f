"""Segment what an expression refers to in an image or a video; write masks and overlays.

Usage:
    # an HF folder written by tools/convert_ckpt.py to-hf (it stores its build config)
    python tools/predict.py hf/mba_1b --image demo.jpg --text "the dog on the left" --out out/
    # a config and any checkpoint (DeepSpeed dir, work dir, .pth, or HF folder such as the
    # Sa2VA-1B release: its MBA starts at gamma = 0, i.e. plain Sa2VA)
    python tools/predict.py configs/mba_1b.py --checkpoint work_dirs/mba_1b/iter_5000.pth \
        --video frames_dir_or.mp4 --text "the man who turns around" --out out/ --attention
    # override fields of the config (configs/README.md), e.g. MBA without its mask gate
    python tools/predict.py CONFIG --checkpoint CKPT --image a.jpg --text "..." --out out/ \
        --cfg-options mba.use_mask_gate=False

Image: OUT/<stem>.png (mask, 0/255), OUT/<stem>_overlay.png, and with --attention
OUT/<stem>_attention.png (gated MBA attention, strongest routed token per pixel) and
OUT/<stem>_attention.npy ((K, h, w) per-token maps, heads averaged).
Video (a folder of frames, sorted by name, or an .mp4): OUT/<frame>.png per frame,
OUT/overlay.mp4 (mp4v; --frames also writes OUT/overlay/<frame>.png), with --attention
OUT/attention/<frame>.png for the frames MBA ran on (Sa2VA's frame rule: the first 5, the
[SEG]-prompted ones). --answer "It is [SEG]." skips generation (untrained models).
An unreadable image or an empty expression exits with status 1 and a message.
"""

import argparse
import sys
from contextlib import nullcontext
from pathlib import Path

import cv2
import numpy as np
import torch
from mmengine.config import DictAction
from PIL import Image

from mpr_cma.checkpoint import (
    build_and_load,
    build_model,
    is_hf_folder,
    load_model_config,
    stored_model_config,
)
from mpr_cma.engine.config import SA2VA_NUM_KEY_FRAMES, config_num_key_frames
from mpr_cma.models.attention_recording import record_attention
from mpr_cma.models.inference import predict_image, predict_video
from mpr_cma.models.mllm.preprocess import open_image
from mpr_cma.visualization import attention_maps, overlay_heatmap, overlay_masks

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="config file, or HF folder written by convert_ckpt.py")
    parser.add_argument("--checkpoint", help="weights for a config: DeepSpeed dir, .pth, HF")
    parser.add_argument("--config", help="config for an HF folder that stores none")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                        help="override fields of the config file, key=value "
                             "(configs/README.md)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", help="image file")
    source.add_argument("--video", help="folder of frames or .mp4 file")
    parser.add_argument("--text", required=True, help='referring expression, "the ..."')
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--attention", action="store_true", help="also save MBA attention")
    parser.add_argument("--answer", help='teacher-forced answer, e.g. "It is [SEG]."')
    parser.add_argument("--num-key-frames", type=int,
                        help="video frames shown to the MLLM (default: the config's "
                             "num_key_frames, else Sa2VA's 5)")
    parser.add_argument("--fps", type=float, default=10.0, help="overlay video frame rate")
    parser.add_argument("--frames", action="store_true", help="also write overlay frames")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.num_key_frames is not None and args.num_key_frames < 1:
        parser.error(f"--num-key-frames must be a positive integer, got {args.num_key_frames}")
    return args


def default_num_key_frames(args: argparse.Namespace, cfg) -> None:
    """Fill `args.num_key_frames` from the loaded config (None: an HF folder's stored build
    config, which holds the model only: Sa2VA's 5)."""
    if args.num_key_frames is not None:
        return
    if cfg is None:
        args.num_key_frames = SA2VA_NUM_KEY_FRAMES
        return
    try:
        args.num_key_frames = config_num_key_frames(cfg, args.config or args.model)
    except ValueError as err:
        sys.exit(f"error: {err}")


def load_model(args: argparse.Namespace) -> torch.nn.Module:
    path = Path(args.model)
    if path.is_dir():
        if not is_hf_folder(path):
            sys.exit(f"error: {path} is neither a config file nor an HF folder")
        stored = stored_model_config(path)
        if stored is None and args.config is None:
            sys.exit(f"error: {path} stores no build config (mpr_cma_config.json); "
                     "pass --config")
        if args.cfg_options and args.config is None:
            sys.exit("error: --cfg-options applies to a config file: pass --config")
        full = (load_model_config(args.config, cfg_options=args.cfg_options)
                if args.config else None)
        default_num_key_frames(args, full)
        cfg = full.model if full is not None else stored
        model = build_and_load(cfg, path, tokenizer=None if args.config else path)[0]
        print(f"loaded {path}")
    else:
        full = load_model_config(path, cfg_options=args.cfg_options)
        default_num_key_frames(args, full)
        cfg = full.model
        if args.checkpoint is None:
            print("warning: no --checkpoint: the config's pretrained weights / random init")
            model = build_model(cfg, pretrained=True)
        else:
            # tools/test.py's loader: every checkpoint kind, frozen parameters a training
            # checkpoint leaves out come from the config's pretrained weights.
            model = build_and_load(cfg, args.checkpoint)[0]
            print(f"loaded {args.checkpoint}")
    return model.to(args.device).eval()


def read_video(source: Path) -> tuple[list[Image.Image], list[str]]:
    """Frames (RGB PIL) and their names: a folder's images sorted by name, or an .mp4."""
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        return [open_image(f) for f in files], [f.stem for f in files]
    capture = cv2.VideoCapture(str(source))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(Image.fromarray(frame[..., ::-1].copy()))
    capture.release()
    if not frames:
        raise OSError(f"cannot read video {source}: no frames decoded")
    return frames, [f"{i:05d}" for i in range(len(frames))]


def save_png(path: Path, rgb_or_mask: np.ndarray) -> None:
    array = rgb_or_mask.astype(np.uint8) * 255 if rgb_or_mask.dtype == bool else rgb_or_mask
    Image.fromarray(array).save(path)


def run_image(model, args, out: Path, attention: bool) -> None:
    image = np.asarray(open_image(args.image))
    stem = Path(args.image).stem
    result = predict_image(model, Image.fromarray(image), args.text, answer=args.answer,
                           return_attention=attention)
    print(f"answer: {result['answer']!r}; mask pixels: {int(result['mask'].sum())}")
    save_png(out / f"{stem}.png", result["mask"])
    save_png(out / f"{stem}_overlay.png", overlay_masks(image, result["mask"]))
    if "attention" in result:
        maps = attention_maps(result["attention"])
        np.save(out / f"{stem}_attention.npy", maps)
        heat = maps.max(axis=0) if len(maps) else np.zeros(maps.shape[1:], np.float32)
        save_png(out / f"{stem}_attention.png", overlay_heatmap(image, heat))


def run_video(model, args, out: Path, attention_infos: list[dict] | None) -> None:
    frames, names = read_video(Path(args.video))
    result = predict_video(model, frames, args.text, num_key_frames=args.num_key_frames,
                           answer=args.answer)
    print(f"answer: {result['answer']!r}; {len(frames)} frames")
    arrays = [np.asarray(f) for f in frames]
    overlays = [overlay_masks(a, m) for a, m in zip(arrays, result["masks"], strict=True)]
    for name, mask in zip(names, result["masks"], strict=True):
        save_png(out / f"{name}.png", mask)
    h, w = arrays[0].shape[:2]
    writer = cv2.VideoWriter(str(out / "overlay.mp4"), cv2.VideoWriter_fourcc(*"mp4v"),
                             args.fps, (w, h))
    for frame in overlays:
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    if args.frames:
        (out / "overlay").mkdir(exist_ok=True)
        for name, frame in zip(names, overlays, strict=True):
            save_png(out / "overlay" / f"{name}.png", frame)
    if attention_infos is not None and len(attention_infos) == len(result["mba_frames"]):
        # MBA ran on these frames (Sa2VA's rule: the prompted key frames), in this order.
        (out / "attention").mkdir(exist_ok=True)
        for t, info in zip(result["mba_frames"], attention_infos, strict=True):
            name, array = names[t], arrays[t]
            maps = attention_maps(info)
            heat = maps.max(axis=0) if len(maps) else np.zeros(maps.shape[1:], np.float32)
            save_png(out / "attention" / f"{name}.png", overlay_heatmap(array, heat))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.text.strip():
        sys.exit("error: the referring expression (--text) is empty")
    try:
        if args.image:
            open_image(args.image)  # fail on an unreadable image before loading the model
        elif not Path(args.video).exists():
            raise FileNotFoundError(f"video not found: {args.video}")
    except OSError as err:
        sys.exit(f"error: {err}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(args)
    mba = getattr(model.grounding, "mba", None)
    if args.attention and mba is None:
        print("warning: the model has no MBA (baseline config): no attention maps")
    attention = args.attention and mba is not None
    # Images ask predict_image for the attention; video frames are segmented inside SAM-2's
    # memory loop, so a hook on the MBA module records them.
    record = attention and bool(args.video)
    try:
        with torch.no_grad(), (record_attention(mba) if record else nullcontext(None)) as infos:
            if args.image:
                run_image(model, args, out, attention)
            else:
                run_video(model, args, out, infos)
    except OSError as err:
        sys.exit(f"error: {err}")
    print(f"wrote {sorted(p.name for p in out.iterdir())[:12]} to {out}")


if __name__ == "__main__":
    main()
