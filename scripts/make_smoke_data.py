"""Write a minimal data root with every training set of the 1B recipe, in the real layouts.

Usage:
    python scripts/make_smoke_data.py --out DIR [--image-size 448] [--frames 5] [--seed 0]

configs/_base_/datasets/refer_seg_mix.py reads RefCOCO, RefCOCO+, RefCOCOg (umd), MeViS,
ReVOS and Ref-YTVOS train and the LLaVA mix under `data_root`; this writes each of them with
one image / one video (the synthetic generator of scripts/make_synthetic_data.py, at
--image-size px), so the 1B configs train on it unchanged (scripts/smoke_1b_cpu.sh), plus
the evaluation splits tools/test.py reads (refcoco val, mevis valid_u: 2 images, 1 video).
RefCOCO+ and RefCOCOg are copies of the RefCOCO files (refcocog's split file named
refs(umd).p), ReVOS and Ref-YTVOS copies of MeViS train: the layouts are what is tested.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

from mpr_cma.datasets.synthetic import SyntheticConfig, generate_synthetic


def write_smoke_data(out: Path, image_size: int = 448, frames: int = 5, seed: int = 0) -> None:
    """Write the data root (module docstring); `out` must not hold a previous one."""
    config = SyntheticConfig(image_size=image_size,
                             images={"train": 1, "val": 2, "testA": 1, "testB": 1},
                             videos={"train": 1, "valid_u": 1}, frames=frames)
    generate_synthetic(out, seed, config)
    shutil.copytree(out / "refcoco", out / "refcoco+")
    shutil.copytree(out / "refcoco", out / "refcocog")
    (out / "refcocog" / "refs(unc).p").rename(out / "refcocog" / "refs(umd).p")
    for name in ("revos", "ref_ytvos"):
        shutil.copytree(out / "mevis" / "train", out / name / "train")
    llava = out / "llava"
    (llava / "images").mkdir(parents=True)
    image = sorted((out / "coco2014" / "train2014").glob("*.jpg"))[0]
    shutil.copyfile(image, llava / "images" / "0.jpg")
    chat = [
        {"id": "0", "image": "images/0.jpg", "conversations": [
            {"from": "human", "value": "<image>\nWhat shapes are in the image?"},
            {"from": "gpt", "value": "Coloured shapes on a plain background."}]},
        {"id": "1", "conversations": [
            {"from": "human", "value": "Say hello."}, {"from": "gpt", "value": "Hello."}]},
    ]
    (llava / "llava_v1_5_mix665k.json").write_text(json.dumps(chat, indent=1))


def main(argv: list[str] | None = None) -> int:
    """Parse the options and write the data root."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--image-size", type=int, default=448)
    p.add_argument("--frames", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        sys.exit(f"{args.out} is not empty; give a new folder")
    write_smoke_data(args.out, args.image_size, args.frames, args.seed)
    print(f"wrote the smoke data root {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
