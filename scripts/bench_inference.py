"""Inference speed: the plain predict loop vs tools/test.py's runner path (issue 16 item 7).

Usage:
    python scripts/bench_inference.py CONFIG [--checkpoint CKPT] --data-root DIR
        [--dataset refcoco --split val] [--video-dataset mevis_u --video-split valid_u]
        [--images N] [--videos N] [--rounds R] [--answer "It is [SEG]." | --max-new-tokens N]
        [--cfg-options K=V ...] [--json OUT.json]

The model is loaded by `mpr_cma.apis.load_inference_model` (the code `tools/test.py`
builds and loads with), then, in one process:

- images: the first --images sentences of the RefCOCO-family split, R rounds; each round
  runs the plain loop (one `predict_image` call per sentence, nothing else: no grouping,
  RLE encoding or scoring) and the runner path (`inference_runner.predict_refcoco_items`,
  `tools/test.py`'s model loop: a rank's sentences grouped by image, each image encoded
  once), alternating which goes first, so that load on the machine hits both alike. The
  runner's time is its whole call (it reads each image once and RLE-encodes the masks);
  the plain loop's is its `predict_image` calls (images are read before the clock). Both
  must predict the same masks and answers ("same_predictions");
- videos: `predict_video` on the first --videos expressions of the video split, in
  `tools/test.py`'s item order (the runner's path is the same per-expression call).

It prints the load time, seconds per sentence and per expression (median and mean),
images/s and frames/s, and the runner / plain images/s ratio, so they can be put next to
the "model" stage and wall time in `tools/test.py`'s results.json for the same data
(`docs/benchmarks.md`). --images 0 / --videos 0 skips that part.
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
    p.add_argument("--rounds", type=int, default=2,
                   help="image rounds, each running the plain loop and the runner path")
    p.add_argument("--answer", help="teacher-forced answer, e.g. 'It is [SEG].'")
    p.add_argument("--max-tiles", type=int, default=12)
    p.add_argument("--max-new-tokens", type=int, default=2048,
                   help="greedy budget (without --answer; an untrained model never stops)")
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
    if args.rounds < 1:
        raise SystemExit("--rounds must be at least 1")
    import torch

    from mpr_cma.apis import load_inference_model
    from mpr_cma.datasets import RefVOSSplit, encode_mask, load_refcoco, sentence_items
    from mpr_cma.engine.evaluate import split_location
    from mpr_cma.engine.inference_runner import predict_refcoco_items
    from mpr_cma.models.inference import predict_image, predict_video
    from mpr_cma.models.mllm.preprocess import open_image

    start = time.perf_counter()
    loaded = load_inference_model(args.config, args.checkpoint, cfg_options=args.cfg_options)
    report = {"config": args.config, "checkpoint": loaded.checkpoint,
              "device": loaded.device, "threads": torch.get_num_threads(),
              "load_s": time.perf_counter() - start, "batch": vars(args)}
    model = loaded.model
    if args.images:
        items = sentence_items(load_refcoco(args.data_root, args.dataset,
                                            split=args.split))[:args.images]
        images = {r.image_path: open_image(r.image_path) for _, r, _ in items}
        plain_times, runner_times, same = [], [], True
        for round_index in range(args.rounds):
            order = ("plain", "runner") if round_index % 2 == 0 else ("runner", "plain")
            for path in order:
                if path == "plain":
                    plain = []
                    for item_id, record, sentence in items:
                        start = time.perf_counter()
                        out = predict_image(model, images[record.image_path], sentence,
                                            max_tiles=args.max_tiles, answer=args.answer,
                                            max_new_tokens=args.max_new_tokens)
                        plain_times.append(time.perf_counter() - start)
                        plain.append({"item_id": item_id, "rle": encode_mask(out["mask"]),
                                      "has_seg": out["has_seg"], "answer": out["answer"]})
                else:
                    start = time.perf_counter()
                    runner = predict_refcoco_items(model, items, range(len(items)),
                                                   answer=args.answer,
                                                   max_tiles=args.max_tiles,
                                                   max_new_tokens=args.max_new_tokens)
                    runner_times.append(time.perf_counter() - start)
            same = same and plain == runner
        report["image"] = summary(plain_times, len(plain_times))
        report["image"]["distinct_images"] = len(images)
        report["image_runner"] = {
            "rounds": args.rounds, "sentences": len(items), "seconds": runner_times,
            "frames_per_s": len(items) * len(runner_times) / sum(runner_times)}
        report["image_ratio"] = (report["image_runner"]["frames_per_s"]
                                 / report["image"]["frames_per_s"])
        report["same_predictions"] = same
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
                          answer=args.answer, max_new_tokens=args.max_new_tokens)
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
    if "image_runner" in report:
        r = report["image_runner"]
        print(f"image: runner path ({r['sentences']} sentences on "
              f"{report['image']['distinct_images']} image(s), {r['rounds']} rounds "
              f"alternating with the plain loop): {r['frames_per_s']:.3f} images/s, "
              f"{report['image_ratio']:.2f}x the plain loop; same predictions: "
              f"{report['same_predictions']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
