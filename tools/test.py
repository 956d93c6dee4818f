"""Evaluate MPR-CMA on RefCOCO/+/g, Ref-DAVIS17 and MeViS, or score saved predictions.

Usage:
    # score saved predictions: PNG folders PRED/<video>/<exp_id>/<frame>.png, DAVIS-style
    # object-id PNGs PRED/<video>/<frame>.png (pixel = obj_id of meta_expressions.json), or
    # the results.json of Sa2VA's ref_vos_eval.py with RLE masks
    python tools/test.py --eval-only --dataset mevis_u --gt data/mevis/valid_u --pred PRED
    python tools/test.py --eval-only --dataset davis17 --gt data/davis17/valid \
        --meta data/davis17/meta_expressions/valid/meta_expressions.json --pred results.json
    # (Sa2VA's folders: --gt data/video_datas/davis17/valid alone finds that meta too)
    # package MeViS valid predictions as the server's submission zip (checked complete)
    python tools/test.py --eval-only --dataset mevis --gt data/mevis/valid --pred PRED

    # inference with a checkpoint: an HF folder in the Sa2VA layout, a DeepSpeed checkpoint
    # of our training (iter_N.pth/, or the work dir: its latest), or an mmengine .pth file
    python tools/test.py CONFIG --checkpoint CKPT --dataset refcoco --split val
    python tools/test.py CONFIG --checkpoint CKPT --dataset mevis_u --save-masks
    python tools/test.py CONFIG --checkpoint CKPT --dataset mevis   # submission zip
    tools/dist_test.sh CONFIG 4 --checkpoint CKPT --all --data-root data
    # smoke test of the pipeline without weights (results.json says "random_init": true)
    python tools/test.py configs/tiny/sa2va_mba_tiny.py --random-init --dataset refcoco
    # override config fields of the model (configs/README.md), e.g. an MBA without its gate
    python tools/test.py CONFIG --checkpoint CKPT --dataset refcoco --cfg-options \
        mba.use_mask_gate=False

Inference reads DATA_ROOT (--data-root, default data/) in the layout of data/README.md
(refcocog: umd split; video splits DATA_ROOT/davis17/valid, DATA_ROOT/mevis/valid_u|valid)
or in Sa2VA's (ref_seg/, glamm_data/images/coco2014/train2014, video_datas/...), found
automatically or forced with --data-layout. RefCOCO ground truth of annotations made of
several polygons is their union (--gt-rule sa2va: Sa2VA's evaluation rule, which loses the
overlap; docs/sa2va_parity.md). Ref-DAVIS17 expressions get Sa2VA's anno_ids (string-sorted
numbering, the file's anno_ids ignored, as Sa2VA's eval_davis.py); other splits use the
file's anno_ids when every expression has them (--anno-id-rule overrides both).
answers greedily (--answer teacher-forces a fixed answer instead; an answer without [SEG] is
an empty mask, counted as metrics["no_seg"]), shards items over torchrun ranks
(i % world == rank) and scores on rank 0 with the --eval-only code. --save-masks writes
0/255 PNGs to WORK_DIR/masks/ (<video>/<exp_id>/<frame>.png, or <ref_id>_<sent_id>.png).
--all runs every split of Table 1 whose data exists (others are skipped with a message)
into WORK_DIR/<dataset>_<split>/ and writes WORK_DIR/results_all.json.

WORK_DIR defaults to work_dirs/test/<config>__<checkpoint>-<hash>/<dataset>_<split> (with
--eval-only: work_dirs/test/eval-only__<pred>-<hash>/...), where <hash> digests the
absolute config, checkpoint (or prediction) paths and the --cfg-options, so two
evaluations of different models never write into the same results.json.
Writes WORK_DIR/results.json = {"dataset", "split", "metrics", "per_item", "config",
"checkpoint", "checkpoint_sha256", "timings", ...} (scores as fractions in [0, 1]) and
WORK_DIR/test.log, and prints a table laid out like the paper's Table 1 (x100). Timings
(seconds; inference: "data", "model", "post_processing" summed over ranks) are logged too.
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

# Only what the argument parser needs is imported here: --help and --eval-only must not
# pay for torch / transformers / the model stack (tests/tools/test_test_imports.py checks
# it); scoring code is imported in run_eval_only, the model's in _run_inference.
from mpr_cma.datasets.layouts import LAYOUTS
from mpr_cma.datasets.refcoco_masks import GT_RULES
from mpr_cma.datasets.refvos_format import ANNO_ID_RULES, DATASET_ANNO_ID_RULES

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
    parser.add_argument("--anno-id-rule", choices=list(ANNO_ID_RULES),
                        help="video anno_ids: auto (file's, else Sa2VA's numbering), file, "
                        "sa2va; default sa2va for davis17 (Sa2VA's eval_davis.py), else auto")
    parser.add_argument("--pred", help="PNG folder PRED/<video>/<exp_id>/<frame>.png or .json")
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="score missing predictions as empty masks (and report them)",
    )
    parser.add_argument("--save-masks", action="store_true", help="write PNGs (inference)")
    parser.add_argument("--work-dir", help="default work_dirs/test/<config>__<checkpoint>-"
                        "<hash>/<dataset>_<split> (module docstring)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--launcher", choices=["none", "pytorch"], default="none")
    inference = parser.add_argument_group("inference")
    inference.add_argument("--data-root", default="data", help="DATA_ROOT (default data)")
    inference.add_argument("--data-layout", choices=list(LAYOUTS), default="auto",
                           help="DATA_ROOT layout: ours (mpr_cma), Sa2VA's, or auto")
    inference.add_argument("--gt-rule", choices=list(GT_RULES), default="union",
                           help="RefCOCO GT of several polygons: union (true mask) or sa2va")
    inference.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                           help="override config fields, as tools/train.py "
                                "(configs/README.md)")
    inference.add_argument("--random-init", action="store_true",
                           help="no checkpoint: evaluate the config's init (smoke tests)")
    inference.add_argument("--answer", help="teacher-force this answer, e.g. 'It is [SEG].'")
    inference.add_argument("--max-new-tokens", type=int, default=2048,
                           help="generation budget (Sa2VA: 2048)")
    inference.add_argument("--max-tiles", type=int, default=12, help="image tiles (RefCOCO)")
    inference.add_argument("--num-key-frames", type=int,
                           help="video frames shown to the MLLM and prompted (default: the "
                           "config's num_key_frames, else Sa2VA's 5)")
    inference.add_argument("--local_rank", "--local-rank", type=int, default=0,
                           help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.eval_only:
        return _check_inference_args(parser, args)
    if args.all or args.dataset is None:
        parser.error("--eval-only scores one --dataset (davis17, mevis_u, or mevis to package)")
    if args.dataset.startswith("refcoco"):
        parser.error("--eval-only for RefCOCO/+/g is not available yet (RefCOCO issue)")
    if not (args.gt or args.meta) or not args.pred:
        parser.error("--eval-only needs --gt (or --meta) and --pred")
    if args.cfg_options:
        parser.error("--cfg-options changes the model's config; --eval-only has none")
    args.split = args.split or DEFAULT_SPLITS[args.dataset]
    args.anno_id_rule = args.anno_id_rule or DATASET_ANNO_ID_RULES.get(args.dataset, "auto")
    run = run_name(None, args.pred, {"gt": args.gt and str(Path(args.gt).resolve()),
                                     "meta": args.meta, "mask_dict": args.mask_dict,
                                     "allow_missing": args.allow_missing,
                                     "anno_id_rule": args.anno_id_rule})
    args.work_dir = Path(args.work_dir or f"work_dirs/test/{run}/{args.dataset}_{args.split}")
    return args


def eval_split_root(args: argparse.Namespace) -> Path:
    """The split folder of --eval-only: --gt, else the folder of --meta; a meta in Sa2VA's
    <dataset>/meta_expressions/<split>/ points at <dataset>/<split>/."""
    if args.gt:
        return Path(args.gt)
    meta_dir = Path(args.meta).parent
    if meta_dir.parent.name == "meta_expressions":
        return meta_dir.parent.parent / meta_dir.name
    return meta_dir


def run_name(config: str | None, target: str | None, settings: dict | None = None) -> str:
    """`<config stem>__<target name>-<8 hex>`: the default work dir of one evaluation.

    `config` None means --eval-only, `target` (checkpoint or predictions) None a random
    init. The hash digests the absolute paths and the other `settings` that change the
    scores (--cfg-options, data, answer options), so two checkpoints of the same name
    (iter_2000.pth of two runs) or two settings get two folders.
    """
    stem = Path(config).stem if config else "eval-only"
    name = Path(target).name if target else "random-init"
    key = json.dumps([config and str(Path(config).resolve()),
                      target and str(Path(target).resolve()), settings or {}],
                     sort_keys=True, default=str)
    return f"{stem}__{name}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def config_num_key_frames(parser: argparse.ArgumentParser, config: str,
                          cfg_options: list[str]) -> int:
    """The config's `num_key_frames` (configs/_base_/default_runtime.py), else Sa2VA's 5."""
    from mpr_cma.engine.config import ConfigReferenceError, load_config
    from mpr_cma.engine.config import config_num_key_frames as read_num_key_frames
    try:
        cfg = load_config(config, cfg_options, import_custom_modules=False)
    except (FileNotFoundError, ConfigReferenceError) as err:
        parser.error(f"{config}: {err}")
    try:
        return read_num_key_frames(cfg, config)
    except ValueError as err:
        parser.error(str(err))


def _check_inference_args(parser: argparse.ArgumentParser,
                          args: argparse.Namespace) -> argparse.Namespace:
    if not args.config:
        parser.error("inference needs CONFIG (or --eval-only to score saved predictions)")
    if (args.checkpoint is None) == (not args.random_init) or (
            args.checkpoint or "").lower() == "none":
        parser.error("give --checkpoint CKPT, or --random-init explicitly for a smoke test")
    if args.all == (args.dataset is not None):
        parser.error("give one of --dataset or --all")
    if args.all and args.split:
        parser.error("--all runs every split of Table 1; --split goes with --dataset")
    args.split = None if args.all else args.split or DEFAULT_SPLITS[args.dataset]
    if args.num_key_frames is None:
        args.num_key_frames = config_num_key_frames(parser, args.config, args.cfg_options)
    elif args.num_key_frames < 1:
        parser.error(f"--num-key-frames must be a positive integer, got {args.num_key_frames}")
    name = "all" if args.all else f"{args.dataset}_{args.split}"
    run = run_name(args.config, args.checkpoint, {
        "cfg_options": sorted(args.cfg_options), "data_root": str(Path(args.data_root).resolve()),
        **{k: getattr(args, k) for k in ("answer", "max_new_tokens", "max_tiles",
                                         "num_key_frames", "data_layout", "gt_rule",
                                         "anno_id_rule")}})
    args.work_dir = Path(args.work_dir or f"work_dirs/test/{run}/{name}")
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
        elif "cIoU" in m:
            lines.append(
                f"{r['dataset']} {r['split']}: cIoU {100 * m['cIoU']:.2f}  gIoU "
                f"{100 * m['gIoU']:.2f}  ({m['num_items']} sentences; answers without "
                f"[SEG]: {m['no_seg']})"
            )
        elif "submission" in m:
            lines.append(
                f"{r['dataset']} {r['split']}: submission {m['submission']} "
                f"complete ({m['num_frames']} masks, {m['num_expressions']} expressions)"
            )
    return "\n".join(lines)


def run_eval_only(args: argparse.Namespace) -> dict:
    """Score (davis17, mevis_u) or package (mevis) the predictions; return results.json."""
    from mpr_cma.datasets.refvos_format import RefVOSSplit
    from mpr_cma.evaluation.refvos import evaluate_predictions, open_predictions
    from mpr_cma.evaluation.submission import write_submission

    timings: dict[str, float] = {}
    with stage(timings, "load_ground_truth"):
        split = RefVOSSplit(eval_split_root(args), args.meta, args.mask_dict,
                            anno_id_rule=args.anno_id_rule)
    logger.info("ground truth %s, %s: %s", split.meta_file, split.mask_file,
                split.describe_anno_ids())
    with stage(timings, "open_predictions"):
        source = open_predictions(args.pred, split)
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
        "mask_dict": None if split.mask_file is None else str(split.mask_file),
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


def _init_distributed(launcher: str) -> int:
    """Join the torchrun world (gloo on CPU, nccl on GPU); return this rank."""
    if launcher != "pytorch":
        return 0
    import torch.distributed as dist

    from mpr_cma.engine.runner import default_backend

    if not dist.is_initialized():
        dist.init_process_group(backend=default_backend())
    return dist.get_rank()


def _leave_distributed() -> None:
    """Wait for every rank, then tear the process group down (after a normal return on
    every rank). A rank that exits while another still scores, or with a live gloo group,
    can abort at interpreter exit ("terminate called without an active exception"),
    failing a run that succeeded."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def run_inference(args: argparse.Namespace) -> int:
    """Build + load the model, evaluate the split(s), write results.json (rank 0)."""
    rank = _init_distributed(args.launcher)
    # No teardown after an exception: the other ranks may be waiting in a collective, and a
    # barrier here would hang them all; torchrun stops them when this rank exits.
    code = _run_inference(args, rank)
    _leave_distributed()
    return code


def _run_inference(args: argparse.Namespace, rank: int) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # configs' custom_imports
    from mpr_cma.checkpoint.errors import CheckpointKeyError, CorruptCheckpointError
    from mpr_cma.checkpoint.resolve import resolve_checkpoint
    from mpr_cma.engine.config import ConfigReferenceError
    from mpr_cma.engine.evaluate import build_eval_model, eval_device, evaluate_split
    from mpr_cma.engine.evaluate import missing_data as why_missing
    from mpr_cma.evaluation.refvos import PredictionError

    if rank == 0:
        setup_logging(args.work_dir)
    try:  # fail fast on a wrong path, before reading data or building the model
        if args.checkpoint is not None:
            resolve_checkpoint(args.checkpoint)
    except (FileNotFoundError, CorruptCheckpointError) as err:
        logger.error("%s", err)
        return 1
    splits = [key for _, keys in TABLE1 for key in keys] if args.all else [
        (args.dataset, args.split)]
    todo = []
    for dataset, split in splits:
        try:
            reason = why_missing(args.data_root, dataset, split, args.data_layout)
        except ValueError as err:  # a corrupt refs pickle (CorruptFileError) names its file
            logger.error("%s %s: %s", dataset, split, err)
            return 1
        if reason is None:
            todo.append((dataset, split))
        elif args.all:
            logger.warning("skipping %s", reason)
        else:
            logger.error("%s (--data-root %s)", reason, args.data_root)
            return 1
    if not todo:
        logger.error("--all: no Table 1 split has data under %s", args.data_root)
        return 1
    setup: dict[str, float] = {}
    try:
        with stage(setup, "build_model"):
            model, ckpt = build_eval_model(args.config, args.checkpoint, eval_device(),
                                           cfg_options=args.cfg_options)
    except (FileNotFoundError, CorruptCheckpointError, CheckpointKeyError,
            ConfigReferenceError) as err:
        logger.error("%s", err)
        return 1
    name = "random-init" if args.random_init else Path(args.checkpoint).name
    all_results, failed = [], []
    for dataset, split in todo:
        work_dir = args.work_dir / f"{dataset}_{split}" if args.all else args.work_dir
        start = time.perf_counter()
        try:  # data errors are the same on every rank, so no rank waits in a collective
            result = evaluate_split(
                model, dataset, split, args.data_root, work_dir, answer=args.answer,
                max_tiles=args.max_tiles, num_key_frames=args.num_key_frames,
                max_new_tokens=args.max_new_tokens, save_masks=args.save_masks,
                progress=not args.no_progress, layout=args.data_layout,
                gt_rule=args.gt_rule, anno_id_rule=args.anno_id_rule)
        except (PredictionError, FileNotFoundError, KeyError, ValueError, OSError) as err:
            logger.error("%s %s failed: %s", dataset, split, err)
            failed.append(f"{dataset} {split}")
            continue
        if rank != 0:
            continue
        result["timings"].update(setup, total=round(time.perf_counter() - start, 4))
        results = {"dataset": dataset, "split": split, "metrics": result.pop("metrics"),
                   "per_item": result.pop("per_item"), "config": str(args.config),
                   "cfg_options": args.cfg_options, **ckpt,
                   "teacher_forced_answer": args.answer, "data_root": str(args.data_root),
                   "world_size": len(result["timings"]["per_rank"]), **result}
        work_dir.mkdir(parents=True, exist_ok=True)
        (work_dir / "results.json").write_text(json.dumps(results, indent=2))
        logger.info("wrote %s", work_dir / "results.json")
        all_results.append(results)
    if rank == 0:
        if args.all:
            summary = [{k: r[k] for k in ("dataset", "split", "metrics", "timings")}
                       for r in all_results]
            (args.work_dir / "results_all.json").write_text(json.dumps(
                {"config": str(args.config), **ckpt, "results": summary}, indent=2))
        print(format_table(name, all_results))
    if failed:
        logger.error("failed: %s", ", ".join(failed))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.eval_only:
        return run_inference(args)
    if args.launcher == "pytorch" and int(os.environ.get("RANK", "0")) != 0:
        return 0  # scoring saved predictions is a single-process job
    from mpr_cma.evaluation.refvos import PredictionError

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
