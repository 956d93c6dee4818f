"""Generate the synthetic referring-segmentation data (RefCOCO + MeViS layouts) for the demo.

Usage:
    python scripts/make_synthetic_data.py --out data_tiny --seed 0
    python scripts/make_synthetic_data.py --out DIR --seed 1 --image-size 96 \\
        --train-images 1000 --eval-images 100 --train-videos 100 --eval-videos 30 --frames 8

Writes, under --out (the data_root of configs/_base_/datasets/refer_seg_tiny.py)::

    refcoco/instances.json, refcoco/refs(unc).p     splits train / val / testA / testB
    coco2014/train2014/COCO_train2014_<id>.jpg
    mevis/train/, mevis/valid_u/                    JPEGImages, meta_expressions.json,
                                                    mask_dict.json
    scenes.json                                     scene descriptions, for checking
    tiers.json                                      the tier of every expression
    attribute/                                      with --attribute-train-images N: a
                                                    second root (same layout, seed + 1)
                                                    of N train images asked by attribute
                                                    expressions only (the demo's extra
                                                    training set, configs/tiny/demo.py)

Images and frames are square, --image-size pixels (default 64: the tiny configs give SAM-2
64 px and the MLLM 56 px tiles). The defaults (400 train / 60 val / 40 testA / 40 testB
images, 60 + 20 videos of 8 frames) make about 4 MB in a few seconds. The same seed and
knobs give byte-identical files. Expression kinds and the testA/testB rule are described in
mpr_cma/datasets/synthetic.py. An existing output is refused unless --overwrite, which
first deletes the generated entries (the four paths above) and nothing else.
"""

import argparse
import shutil
import sys
import time
from pathlib import Path

from mpr_cma.datasets.synthetic import IMAGE_KINDS, SyntheticConfig, generate_synthetic

GENERATED = ("refcoco", "coco2014", "mevis", "attribute", "tiers.json", "scenes.json")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="data root to write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, default=64, help="side of images and frames")
    p.add_argument("--train-images", type=int, default=400)
    p.add_argument("--val-images", type=int, default=60)
    p.add_argument("--test-images", type=int, default=40, help="images in testA and in testB")
    p.add_argument("--train-videos", type=int, default=60)
    p.add_argument("--val-videos", type=int, default=20, help="videos in MeViS valid_u")
    p.add_argument("--frames", type=int, default=8, help="frames per video (>= 3)")
    p.add_argument("--image-kinds", default=",".join(IMAGE_KINDS),
                   help="comma-separated image expression kinds to make (default: all; "
                        "e.g. attribute)")
    p.add_argument("--attribute-train-images", type=int, default=0,
                   help="also write OUT/attribute: N train images asked by attribute "
                        "expressions only, seed + 1 (default 0: none)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Generate the data; print the counts, size and time."""
    args = parse_args(argv)
    if args.image_size < 32:
        sys.exit(f"--image-size must be at least 32, got {args.image_size}")
    if args.frames < 3:
        sys.exit(f"--frames must be at least 3 (motion needs them), got {args.frames}")
    existing = [args.out / name for name in GENERATED if (args.out / name).exists()]
    if existing and not args.overwrite:
        sys.exit(f"{args.out} already holds generated data ({existing[0].name}); "
                 "pass --overwrite to replace it")
    for path in existing:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    kinds = tuple(k for k in args.image_kinds.split(",") if k)
    if not kinds or set(kinds) - set(IMAGE_KINDS):
        sys.exit(f"--image-kinds must name kinds of {', '.join(IMAGE_KINDS)}, got "
                 f"{args.image_kinds!r}")
    config = SyntheticConfig(
        image_size=args.image_size, image_kinds=kinds,
        images={"train": args.train_images, "val": args.val_images,
                "testA": args.test_images, "testB": args.test_images},
        videos={"train": args.train_videos, "valid_u": args.val_videos},
        frames=args.frames,
    )
    start = time.perf_counter()
    if args.attribute_train_images > 0:
        # Written first: the main root's scenes.json, written last, marks a finished run.
        extra = SyntheticConfig(
            image_size=args.image_size, image_kinds=("attribute",),
            images={"train": args.attribute_train_images, "val": 0, "testA": 0, "testB": 0},
            videos={"train": 0, "valid_u": 0}, frames=args.frames)
        counts = generate_synthetic(args.out / "attribute", args.seed + 1, extra)["kinds"]
        print(f"attribute/ {args.attribute_train_images} train images, "
              f"{counts.get('attribute', 0)} attribute sentences")
    summary = generate_synthetic(args.out, args.seed, config)
    seconds = time.perf_counter() - start
    size = sum(p.stat().st_size for name in GENERATED for p in
               ([args.out / name] if name.endswith(".json") else (args.out / name).rglob("*"))
               if p.is_file())
    for split, n in summary["refcoco"].items():
        print(f"refcoco {split:7s} {n['images']:5d} images {n['refs']:6d} refs "
              f"{n['sentences']:6d} sentences")
    for split, n in summary["mevis"].items():
        print(f"mevis   {split:7s} {n['videos']:5d} videos {n['expressions']:6d} expressions")
    print("kinds:", ", ".join(f"{k} {v}" for k, v in summary["kinds"].items()))
    print(f"wrote {size / 1e6:.1f} MB to {args.out} in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
