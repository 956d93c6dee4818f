"""Write a minimal data root with every training set of the 1B recipe, in the real layouts.

Usage:
    python scripts/make_smoke_data.py --out DIR [--image-size 448] [--frames 5] [--seed 0]
        [--eval-sentences N] [--eval-expressions N]

configs/_base_/datasets/refer_seg_mix.py reads RefCOCO, RefCOCO+, RefCOCOg (umd), MeViS,
ReVOS and Ref-YTVOS train and the LLaVA mix under `data_root`; this writes each of them with
one image / one video (the synthetic generator of scripts/make_synthetic_data.py, at
--image-size px), so the 1B configs train on it unchanged (scripts/smoke_1b_cpu.sh), plus
the evaluation splits tools/test.py reads (refcoco val, mevis valid_u: 2 images, 1 video).
RefCOCO+ and RefCOCOg are copies of the RefCOCO files (refcocog's split file named
refs(umd).p), ReVOS and Ref-YTVOS copies of MeViS train: the layouts are what is tested.
--eval-sentences / --eval-expressions keep only the first N sentences of refcoco val and
the first N expressions of mevis valid_u (e.g. a quick timing of tools/test.py at 1B).
"""

import argparse
import json
import pickle
import shutil
import sys
from pathlib import Path

from mpr_cma.datasets.synthetic import SyntheticConfig, generate_synthetic


def trim_eval_splits(out: Path, sentences: int | None, expressions: int | None) -> None:
    """Keep the first `sentences` sentences of refcoco val and the first `expressions`
    expressions of mevis valid_u (None: all)."""
    if sentences is not None:
        refs_file = out / "refcoco" / "refs(unc).p"
        refs, kept, left = pickle.loads(refs_file.read_bytes()), [], sentences
        for ref in refs:
            if ref["split"] == "val":
                if left <= 0:
                    continue
                ref = {**ref, "sentences": ref["sentences"][:left],
                       "sent_ids": ref["sent_ids"][:left]}
                left -= len(ref["sentences"])
            kept.append(ref)
        refs_file.write_bytes(pickle.dumps(kept))
    if expressions is not None:
        meta_file = out / "mevis" / "valid_u" / "meta_expressions.json"
        meta, left = json.loads(meta_file.read_text()), expressions
        for video in meta["videos"].values():
            items = list(video["expressions"].items())[:max(left, 0)]
            video["expressions"] = dict(items)
            left -= len(items)
        meta_file.write_text(json.dumps(meta))


def write_smoke_data(out: Path, image_size: int = 448, frames: int = 5, seed: int = 0,
                     eval_sentences: int | None = None,
                     eval_expressions: int | None = None) -> None:
    """Write the data root (module docstring); `out` must not hold a previous one."""
    config = SyntheticConfig(image_size=image_size,
                             images={"train": 1, "val": 2, "testA": 1, "testB": 1},
                             videos={"train": 1, "valid_u": 1}, frames=frames)
    generate_synthetic(out, seed, config)
    trim_eval_splits(out, eval_sentences, eval_expressions)
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
    p.add_argument("--eval-sentences", type=int, help="refcoco val sentences kept (all)")
    p.add_argument("--eval-expressions", type=int, help="mevis valid_u expressions kept (all)")
    args = p.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        sys.exit(f"{args.out} is not empty; give a new folder")
    write_smoke_data(args.out, args.image_size, args.frames, args.seed, args.eval_sentences,
                     args.eval_expressions)
    print(f"wrote the smoke data root {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
