"""Peak memory of video inference against the number of frames: lazy vs batched encoding.

Usage:
    python scripts/bench_video_memory.py configs/mba_1b.py --frames 8 32 128 \\
        [--encodings lazy batched] [--max-batched-frames 32] [--size 256] [--json OUT]
        [--cfg-options pretrained_root=DIR]

The config's model is built at random init (weight paths ignored; `--cfg-options
pretrained_root=DIR` for the tokenizer folder the 1B configs read) and `predict_video`
runs on a synthetic video of T frames (--size px squares; SAM-2 resizes them to its S x S)
with the forced answer "It is [SEG]." (no generation: the MLLM part is the same for every
T, the first 5 frames). For each encoding ("lazy": each frame encoded when SAM-2 visits
it, the default; "batched": every frame in one encoder call, Sa2VA's) and each T, a
sampler thread reads the process RSS every 20 ms; the reported peak is above the RSS
measured just before the call (the built model), together with the wall time. Batched runs
above --max-batched-frames are skipped (they would not fit: ~100 MB of SAM-2 features per
frame at 1024 px).
"""

import argparse
import json
import time

import numpy as np
import torch
from PIL import Image

from mpr_cma.engine.config import load_config
from mpr_cma.engine.peak_rss import PeakRSS
from mpr_cma.models.inference import VIDEO_ENCODINGS, predict_video
from mpr_cma.registry import MODELS


def synthetic_video(num_frames: int, size: int) -> list[Image.Image]:
    """A bright square drifting over noise."""
    rng = np.random.default_rng(0)
    frames = []
    for t in range(num_frames):
        a = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
        x = (t * 3) % (size // 2)
        a[size // 4: size // 2, x: x + size // 4] = (220, 50, 40)
        frames.append(Image.fromarray(a))
    return frames


def main(argv: list[str] | None = None) -> int:
    """Run every (encoding, T) case; print a table; optionally write JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config")
    p.add_argument("--frames", type=int, nargs="+", default=[8, 32, 128])
    p.add_argument("--encodings", nargs="+", choices=VIDEO_ENCODINGS, default=list(VIDEO_ENCODINGS))
    p.add_argument("--max-batched-frames", type=int, default=32)
    p.add_argument("--size", type=int, default=256, help="side of the synthetic frames")
    p.add_argument("--json")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="K=V",
                   help="config overrides, e.g. pretrained_root=DIR (its tokenizer)")
    args = p.parse_args(argv)
    cfg = load_config(args.config, args.cfg_options).model
    cfg.mllm_pretrained, cfg.grounding.ckpt_path = None, None
    torch.manual_seed(0)
    model = MODELS.build(cfg).eval()
    rows = []
    for num_frames in args.frames:
        video = synthetic_video(num_frames, args.size)
        for encoding in args.encodings:
            if encoding == "batched" and num_frames > args.max_batched_frames:
                continue
            start = time.perf_counter()
            with PeakRSS(interval=0.02) as rss:
                out = predict_video(model, video, "the red square", answer="It is [SEG].",
                                    encoding=encoding)
            rows.append({"encoding": encoding, "frames": num_frames,
                         "seconds": time.perf_counter() - start,
                         "peak_above_model_bytes": rss.peak - rss.start,
                         "model_rss_bytes": rss.start,
                         "mask_fraction": float(out["masks"].mean())})
            r = rows[-1]
            peak, base = r["peak_above_model_bytes"] / 2**30, r["model_rss_bytes"] / 2**30
            print(f"{encoding:8s} T={num_frames:4d}  peak +{peak:6.2f} GiB  (model "
                  f"{base:.2f} GiB)  {r['seconds']:7.1f} s", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": args.config, "options": args.cfg_options, "size": args.size,
                       "threads": torch.get_num_threads(), "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
