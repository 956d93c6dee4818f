"""Time the exact DAVIS 2017 J / F metrics on the shared DAVIS fixture.

Usage:
    python scripts/bench_metrics.py [--runs 5] [--fixture DIR] [--official PATH]

Scores every reference object of the three fixture sequences (blackswan, bike-packing,
dogs-jump: 6 objects, 386 object-frames at 480p) with `region_similarity` and
`boundary_f_measure`, reports the best of `--runs` wall-clock times, checks the numbers
against the fixture's official values, and prints the speed-up against the official code's
3.3 s. That reference figure was measured on a 2-core CI-class machine, not in this run.

`--official PATH` also times, in this process and on the same masks, a file that defines
the official API (`db_eval_iou(annotation, segmentation)` and
`db_eval_boundary(annotation, segmentation, bound_th=...)`, e.g. davis2017/metrics.py of
davisvideochallenge/davis2017-evaluation), which gives a measured ratio on this machine.
Only the metric calls are timed; reading the PNGs and building the boolean masks are not.
"""

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from mpr_cma.evaluation import boundary_f_measure, region_similarity

REPO = Path(__file__).resolve().parents[1]

DEFAULT_FIXTURE = REPO.parent / "shared" / "fixtures" / "davis17_masks"
OFFICIAL_REFERENCE_S = 3.3  # official code, all fixture objects, 2-core CI-class machine


def load_pairs(fixture: Path) -> tuple[list[tuple[str, np.ndarray, np.ndarray]], dict]:
    """[(name, gt (T, H, W) bool, pred (T, H, W) bool)] per reference object, and the
    fixture's official numbers."""
    expected = json.loads((fixture / "expected_official.json").read_text())["per_sequence"]
    pairs = []
    for seq, objects in expected.items():
        files = sorted((fixture / "reference" / seq).glob("*.png"))
        ref = np.stack([np.array(Image.open(f)) for f in files])
        pred = np.stack(
            [np.array(Image.open(fixture / "prediction" / seq / f.name)) for f in files]
        )
        pairs += [(f"{seq}/{k}", ref == int(k), pred == int(k)) for k in objects]
    return pairs, expected


def best_time(fn, runs: int) -> float:
    """Best wall-clock seconds of `runs` calls of `fn`."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def load_official(path: Path):
    """Import `path` as a module; it must define db_eval_iou and db_eval_boundary."""
    spec = importlib.util.spec_from_file_location("official_davis_metrics", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs, best is reported")
    parser.add_argument("--fixture", type=Path, default=DEFAULT_FIXTURE)
    parser.add_argument("--official", type=Path, help="file with the official metric API")
    args = parser.parse_args()
    if not (args.fixture / "expected_official.json").is_file():
        sys.exit(f"fixture not found: {args.fixture}")

    pairs, expected = load_pairs(args.fixture)
    n_frames = sum(len(gt) for _, gt, _ in pairs)
    print(f"fixture: {args.fixture} ({len(pairs)} objects, {n_frames} object-frames)")

    worst = 0.0
    for name, gt, pred in pairs:
        seq, k = name.split("/")
        for key, value in (("J", region_similarity(gt, pred)), ("F", boundary_f_measure(gt, pred))):
            worst = max(worst, float(np.abs(value - expected[seq][k][key]).max()))
    print(f"max |difference| from the official numbers: {worst:.1e}")

    t_j = best_time(lambda: [region_similarity(g, p) for _, g, p in pairs], args.runs)
    t_f = best_time(lambda: [boundary_f_measure(g, p) for _, g, p in pairs], args.runs)
    t_jf = best_time(
        lambda: [(region_similarity(g, p), boundary_f_measure(g, p)) for _, g, p in pairs],
        args.runs,
    )
    print(
        f"mpr_cma: J {t_j:.3f} s + F {t_f:.3f} s; J and F together {t_jf:.3f} s "
        f"(best of {args.runs})"
    )
    print(
        f"vs the official code's {OFFICIAL_REFERENCE_S} s (a reference figure measured on "
        f"a 2-core CI-class machine, not in this run): {OFFICIAL_REFERENCE_S / t_jf:.1f}x"
    )

    if args.official is not None:
        official = load_official(args.official)
        runs = max(1, min(args.runs, 3))
        t_off = best_time(
            lambda: [
                (official.db_eval_iou(g, p), official.db_eval_boundary(g, p, bound_th=0.008))
                for _, g, p in pairs
            ],
            runs,
        )
        print(
            f"official ({args.official}), this run, same process: {t_off:.3f} s "
            f"(best of {runs}) -> measured speed-up {t_off / t_jf:.1f}x"
        )


if __name__ == "__main__":
    main()
