"""Evaluate MPR-CMA on RefCOCO/+/g, Ref-DAVIS17 and MeViS, or score saved predictions.

Usage:
    # score saved predictions (PNG folders PRED/<video>/<exp_id>/<frame>.png, or the
    # results.json of Sa2VA's ref_vos_eval.py with RLE masks)
    python tools/test.py --eval-only --dataset mevis_u --gt data/mevis/valid_u --pred PRED
    python tools/test.py --eval-only --dataset davis17 --gt data/davis17/valid \
        --meta data/davis17/meta_expressions/valid/meta_expressions.json --pred results.json
    # package MeViS valid predictions as the server's submission zip (checked complete)
    python tools/test.py --eval-only --dataset mevis --gt data/mevis/valid --pred PRED

    # inference with a checkpoint (needs the model's predict path: not available yet, #3)
    python tools/test.py CONFIG --checkpoint CKPT --dataset refcoco --split val
    tools/dist_test.sh CONFIG 4 --checkpoint CKPT --all

Writes WORK_DIR/results.json = {"dataset", "split", "metrics", "per_item", "config",
"checkpoint", "checkpoint_sha256", "timings", ...} (scores as fractions in [0, 1]) and
WORK_DIR/test.log, and prints a table laid out like the paper's Table 1 (x100).
With --eval-only, "config" is null, "checkpoint" is the --pred path and
"checkpoint_sha256" is the sha256 of the prediction file (null for a folder).
Bad predictions (missing / unknown / mis-sized masks, an empty folder) exit with status 1
and a message; --allow-missing scores missing masks as empty and reports them.
"""

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from mpr_cma.datasets import RefVOSSplit
from mpr_cma.evaluation.refvos import PredictionError, evaluate_predictions, open_predictions
from mpr_cma.evaluation.submission import write_submission

DEFAULT_SPLITS = {
    "refcoco": "val",
    "refcoco+": "val",
    "refcocog": "val",
    "davis17": "valid",
    "mevis_u": "valid_u",
    "mevis": "valid",
}
# Columns of the paper's Table 1: (title, [(dataset, split), ...]).
TABLE1 = [
    ("RefCOCO val/testA/testB", [("refcoco", s) for s in ("val", "testA", "testB")]),
    ("RefCOCO+ val/testA/testB", [("refcoco+", s) for s in ("val", "testA", "testB")]),
    ("RefCOCOg val/test", [("refcocog", s) for s in ("val", "test")]),
    ("DAVIS", [("davis17", "valid")]),
    ("MeViS (valid_u)", [("mevis_u", "valid_u")]),
]
NOT_AVAILABLE = (
    "inference is not available yet: needs the model's predict path and checkpoint loading "
    "(issue #3). "
    "Score saved predictions with --eval-only --dataset davis17|mevis_u --gt GT --pred PRED."
)
logger = logging.getLogger("mpr_cma.tools.test")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", nargs="?", help="mmengine config (inference only)")
    parser.add_argument("--checkpoint", help="checkpoint to evaluate (inference only)")
    parser.add_argument("--dataset", choices=list(DEFAULT_SPLITS))
    parser.add_argument("--split", help="default: valid / valid_u / val by dataset")
    parser.add_argument("--all", action="store_true", help="every benchmark split (inference)")
    parser.add_argument("--eval-only", action="store_true", help="score saved predictions")
    parser.add_argument("--gt", help="split folder with meta_expressions.json, mask_dict.*")
    parser.add_argument("--meta", help="meta_expressions.json (default GT/meta_expressions.json)")
    parser.add_argument("--mask-dict", help="mask_dict .json/.pkl (default found in GT)")
    parser.add_argument("--pred", help="PNG folder PRED/<video>/<exp_id>/<frame>.png or .json")
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="score missing predictions as empty masks (and report them)",
    )
    parser.add_argument("--save-masks", action="store_true", help="write PNGs (inference)")
    parser.add_argument("--work-dir", help="default work_dirs/test/<dataset>_<split>")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--launcher", choices=["none", "pytorch"], default="none")
    args = parser.parse_args(argv)
    if not args.eval_only:
        parser.error(NOT_AVAILABLE)
    if args.all or args.dataset is None:
        parser.error("--eval-only scores one --dataset (davis17, mevis_u, or mevis to package)")
    if args.dataset.startswith("refcoco"):
        parser.error("--eval-only for RefCOCO/+/g is not available yet (RefCOCO issue)")
    if not (args.gt or args.meta) or not args.pred:
        parser.error("--eval-only needs --gt (or --meta) and --pred")
    args.split = args.split or DEFAULT_SPLITS[args.dataset]
    args.work_dir = Path(args.work_dir or f"work_dirs/test/{args.dataset}_{args.split}")
    return args


@contextmanager
def stage(timings: dict[str, float], name: str):
    """Time one stage into `timings` (seconds) and log it."""
    start = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - start, 4)
    logger.info("stage %-18s %.3f s", name, timings[name])


def sha256_of(path: Path) -> str | None:
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def format_table(name: str, results: list[dict]) -> str:
    """The paper's Table 1 row for `results` (x100; '-' where not evaluated) + a J/F detail."""
    score = {(r["dataset"], r["split"]): r["metrics"] for r in results}

    def cell(key: tuple[str, str]) -> str:
        m = score.get(key)
        value = None if m is None else m.get("cIoU", m.get("J&F"))
        return "-" if value is None else f"{100 * value:.1f}"

    lines = [
        "| Method | " + " | ".join(title for title, _ in TABLE1) + " |",
        "|---" * (len(TABLE1) + 1) + "|",
        f"| {name} | " + " | ".join(" / ".join(cell(k) for k in keys) for _, keys in TABLE1) + " |",
    ]
    for r in results:
        m = r["metrics"]
        if "J&F" in m:
            lines.append(
                f"{r['dataset']} {r['split']}: J {100 * m['J']:.2f}  F {100 * m['F']:.2f}  "
                f"J&F {100 * m['J&F']:.2f}  ({m['num_expressions']} expressions, "
                f"protocol {m['protocol']}; missing frame masks scored empty: "
                f"{m['missing_frames']})"
            )
        elif "submission" in m:
            lines.append(
                f"{r['dataset']} {r['split']}: submission {m['submission']} "
                f"complete ({m['num_frames']} masks, {m['num_expressions']} expressions)"
            )
    return "\n".join(lines)


def run_eval_only(args: argparse.Namespace) -> dict:
    """Score (davis17, mevis_u) or package (mevis) the predictions; return results.json."""
    timings: dict[str, float] = {}
    with stage(timings, "load_ground_truth"):
        split = RefVOSSplit(args.gt or Path(args.meta).parent, args.meta, args.mask_dict)
    with stage(timings, "open_predictions"):
        source = open_predictions(args.pred)
    progress = not args.no_progress
    if args.dataset == "mevis":
        with stage(timings, "write_submission"):
            report = write_submission(
                split, source, args.work_dir / "submission.zip", args.allow_missing, progress
            )
        metrics = {
            "submission": report["zip"],
            "complete": True,
            "num_expressions": report["num_expressions"],
            "num_frames": report["num_frames"],
            "missing_frames": report["missing"]["num_frames"],
        }
        per_item, missing = {}, report["missing"]
    else:
        with stage(timings, "score"):
            scores = evaluate_predictions(split, source, args.dataset, args.allow_missing, progress)
        missing = scores.pop("missing")
        per_item = scores.pop("per_expression")
        metrics = {
            **scores,
            "missing_frames": missing["num_frames"],
            "missing_expressions": sum(1 for v in per_item.values() if v["missing_frames"]),
        }
    pred = Path(args.pred)
    return {
        "dataset": args.dataset,
        "split": args.split,
        "metrics": metrics,
        "per_item": per_item,
        "config": None,
        "checkpoint": str(pred),
        "checkpoint_sha256": sha256_of(pred),
        "allow_missing": args.allow_missing,
        "missing": missing,
        "ground_truth": str(split.meta_file),
        "timings": timings,
    }


def setup_logging(work_dir: Path) -> None:
    """Log the mpr_cma loggers to stderr and WORK_DIR/test.log (replacing earlier handlers)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger("mpr_cma")
    root.setLevel(logging.INFO)
    for handler in [h for h in root.handlers if getattr(h, "_mpr_cma_test", False)]:
        root.removeHandler(handler)
        handler.close()
    for handler in (logging.StreamHandler(sys.stderr), logging.FileHandler(work_dir / "test.log")):
        handler.setFormatter(fmt)
        handler._mpr_cma_test = True  # type: ignore[attr-defined]
        root.addHandler(handler)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.launcher == "pytorch" and int(os.environ.get("RANK", "0")) != 0:
        return 0  # scoring saved predictions is a single-process job
    setup_logging(args.work_dir)
    start = time.perf_counter()
    try:
        results = run_eval_only(args)
    except (PredictionError, FileNotFoundError, KeyError, ValueError) as err:
        logger.error("%s", err)  # to stderr and test.log
        return 1
    results["timings"]["total"] = round(time.perf_counter() - start, 4)
    out = args.work_dir / "results.json"
    out.write_text(json.dumps(results, indent=2))
    logger.info("wrote %s", out)
    print(format_table(Path(args.pred).name, [results]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
