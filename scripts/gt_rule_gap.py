"""Measure how much Sa2VA's RefCOCO ground-truth rule differs from the true (union) masks.

Usage:
    python scripts/gt_rule_gap.py DATA_ROOT [--dataset refcoco] [--split val]
                                            [--data-layout auto]

For every sentence of the split (the evaluation items of tools/test.py) the ground truth is
built both ways (mpr_cma.datasets.refcoco_masks: "union", our default, and "sa2va", what
Sa2VA's evaluation scores against when an annotation has several polygons) and a perfect
prediction, the union mask, is scored against Sa2VA's: the cIoU / gIoU a perfect model
would get from Sa2VA's script. Also counts the refs made of several polygons and those whose
two ground truths differ. Prints one summary line per quantity; a missing or corrupt file
is one line on stderr and exit status 1.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from mpr_cma.datasets.layouts import LAYOUTS
from mpr_cma.datasets.refcoco_format import DATASETS, load_refcoco, ref_mask, sentence_items
from mpr_cma.evaluation.aggregation import RefSegAccumulator


def measure(data_root: str | Path, dataset: str = "refcoco", split: str = "val",
            layout: str = "auto") -> dict:
    """{"refs", "sentences", "multi_polygon", "changed", "cIoU", "gIoU"} of one split."""
    records = load_refcoco(data_root, dataset, split=split, layout=layout)
    multi = changed = 0
    gt: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for rec in records:
        union, sa2va = ref_mask(rec), ref_mask(rec, gt_rule="sa2va")
        gt[rec.ref_id] = (union, sa2va)
        multi += isinstance(rec.segmentation, list) and len(rec.segmentation) > 1
        changed += not np.array_equal(union, sa2va)
    acc = RefSegAccumulator()
    items = sentence_items(records)
    for _, rec, _ in items:
        union, sa2va = gt[rec.ref_id]
        acc.update(sa2va, union)
    scores = acc.compute()
    return {"refs": len(records), "sentences": len(items), "multi_polygon": multi,
            "changed": changed, "cIoU": scores["cIoU"], "gIoU": scores["gIoU"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_root", type=Path)
    parser.add_argument("--dataset", choices=list(DATASETS), default="refcoco")
    parser.add_argument("--split", default="val")
    parser.add_argument("--data-layout", choices=list(LAYOUTS), default="auto")
    args = parser.parse_args(argv)
    try:
        out = measure(args.data_root, args.dataset, args.split, args.data_layout)
    except (FileNotFoundError, KeyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{args.dataset} {args.split}: {out['refs']} refs, {out['sentences']} sentences; "
          f"{out['multi_polygon']} refs with several polygons, {out['changed']} whose ground "
          "truth differs under Sa2VA's rule")
    print(f"perfect prediction (the union) scored against Sa2VA's ground truth: "
          f"cIoU {out['cIoU']:.4f}  gIoU {out['gIoU']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
