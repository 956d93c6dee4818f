"""Inference speed of a plain loop over the public predict API (issue 16 item 7).

Usage:
    python scripts/bench_inference.py CONFIG [--checkpoint CKPT] --data-root DIR
        [--dataset refcoco --split val] [--video-dataset mevis_u --video-split valid_u]
        [--images N] [--videos N] [--answer "It is [SEG]."] [--cfg-options K=V ...]
        [--json OUT.json]

The model is loaded by `mpr_cma.apis.load_inference_model` (the code `tools/test.py`
builds and loads with), then one process calls `predict_image` on the first --images
sentences of the RefCOCO-family split and `predict_video` on the first --videos
expressions of the video split, in `tools/test.py`'s item order, nothing else: no
sharding, gathering, RLE encoding or scoring. It prints the load time, seconds per
sentence and per expression (median and mean), images/s and frames/s, so they can be put
next to the "model" stage and wall time in `tools/test.py`'s results.json for the same
data (`docs/benchmarks.md`). Frames are read before the clock starts (`tools/test.py`
counts reading as its "data" stage). --images 0 / --videos 0 skips that part.
"""

import argparse
import json
import statistics
import time
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config")
    p.add_argument("--checkpoint", help="as tools/test.py; omitted: the config's random init")
    p.add_argument("--data-root", required=True)
    p.add_argument("--dataset", default="refcoco", choices=("refcoco", "refcoco+", "refcocog"))
    p.add_argument("--split", default="val")
    p.add_argument("--video-dataset", default="mevis_u", choices=("davis17", "mevis_u", "mevis"))
    p.add_argument("--video-split", default="valid_u")
    p.add_argument("--images", type=int, default=4, help="sentences to predict (0: none)")
    p.add_argument("--videos", type=int, default=2, help="expressions to predict (0: none)")
    p.add_argument("--answer", help="teacher-forced answer, e.g. 'It is [SEG].'")
    p.add_argument("--max-tiles", type=int, default=12)
    p.add_argument("--num-key-frames", type=int, default=5)
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="K=V")
    p.add_argument("--json", help="also write the results to this file")
    return p.parse_args(argv)


def summary(seconds: list[float], frames: int) -> dict:
    """Per-sample statistics of a list of sample times covering `frames` frames."""
    total = sum(seconds)
    return {"samples": len(seconds), "frames": frames, "seconds": seconds,
            "median_s": statistics.median(seconds), "mean_s": total / len(seconds),
            "frames_per_s": frames / total}


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from mpr_cma.apis import load_inference_model
    from mpr_cma.datasets import RefVOSSplit, load_refcoco, sentence_items
    from mpr_cma.engine.evaluate import split_location
    from mpr_cma.models.inference import predict_image, predict_video
    from mpr_cma.models.mllm.preprocess import open_image

    start = time.perf_counter()
    loaded = load_inference_model(args.config, args.checkpoint, cfg_options=args.cfg_options)
    report = {"config": args.config, "checkpoint": loaded.checkpoint,
              "device": loaded.device, "threads": torch.get_num_threads(),
              "load_s": time.perf_counter() - start, "batch": vars(args)}
    model = loaded.model
    if args.images:
        items = sentence_items(load_refcoco(args.data_root, args.dataset, split=args.split))
        times = []
        for _, record, sentence in items[:args.images]:
            image = open_image(record.image_path)
            start = time.perf_counter()
            predict_image(model, image, sentence, max_tiles=args.max_tiles, answer=args.answer)
            times.append(time.perf_counter() - start)
        report["image"] = summary(times, len(times))
    if args.videos:
        split = RefVOSSplit(split_location(args.data_root, args.video_dataset,
                                           args.video_split))
        times, frames, cached = [], 0, (None, [])
        for expression in list(split.iter_expressions())[:args.videos]:
            if cached[0] != expression.video:
                cached = (expression.video, [open_image(split.frame_path(expression.video, f))
                                             for f in split.frames(expression.video)])
            start = time.perf_counter()
            predict_video(model, cached[1], expression.exp, num_key_frames=args.num_key_frames,
                          answer=args.answer)
            times.append(time.perf_counter() - start)
            frames += len(cached[1])
        report["video"] = summary(times, frames)
    print(f"{args.config}: loaded in {report['load_s']:.1f} s on {report['device']} "
          f"({report['threads']} threads)")
    for kind, unit in (("image", "sentence"), ("video", "expression")):
        if kind in report:
            r = report[kind]
            print(f"{kind}: {r['samples']} x predict_{kind}: {r['median_s']:.2f} s per {unit} "
                  f"(median; mean {r['mean_s']:.2f}), {r['frames_per_s']:.3f} "
                  f"{'images' if kind == 'image' else 'frames'}/s")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
