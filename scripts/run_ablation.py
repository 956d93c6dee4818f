"""Ablation sweep: the rows of the paper's Tables 2 and 3, several seeds, one table.

Usage:
    python scripts/run_ablation.py --config configs/tiny/demo.py \\
        --data-root work_dirs/demo/data --seeds 0 1 2 --epochs 4 --out work_dirs/ablation
    # the paper's rows on real data (GPUs): --config configs/mba_1b.py --procs 4 --data-root data

Rows (ROWS below; the same overrides as configs/ablations/*.py of the 1B model):
    baseline        Sa2VA: no MBA (one decoder pass), no TMC, no boundary loss
    mba             + MBA
    mba_tmc         + MBA + TMC
    mba_tmc_bound   + MBA + TMC + Bound (the full method)
    mba_film        MBA's residual replaced by residual FiLM (Table 3), same losses

For every row a config is written to OUT/configs/<row>.py (`_base_` = --config plus the
row's override of the knobs `mba` / `criterion`; with --epochs, `max_epochs = N`, which the
whole schedule follows).
For every row and seed it trains with tools/dist_train.sh (ZeRO-2; resumes an interrupted
run), evaluates with tools/dist_test.sh on RefCOCO val (cIoU, gIoU) and MeViS valid_u (J&F),
and reads the training step time from the run's log. Memory per row comes from
scripts/bench_train.py on one fixed batch: bytes saved for backward (activations), weights
+ gradients + Adam states (state), and the CUDA peak on a GPU. Finished runs are reused, so
an interrupted sweep continues where it stopped.

Writes OUT/ablation.md (mean +- sample std over seeds), OUT/ablation.csv and
OUT/ablation.json (every run's numbers), with the "every object" yardstick for reading.
On synthetic data (a tiers.json in --data-root) the evaluations save their masks and
ablation.md also gets a table per tier (mpr_cma.evaluation.tiers: attribute, spatial,
size, ordinal cIoU; motion J&F) beside the "every object" and "right shape, any instance"
yardsticks, and marks each row's difference from the first row as beyond the seed spread
(|mean difference| > the sum of the two sample stds) or not.
"""

import argparse
import csv
import hashlib
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mpr_cma.datasets.synthetic import TIERS, TIERS_FILE  # noqa: E402
from mpr_cma.engine.config import ConfigReferenceError, load_config  # noqa: E402
from mpr_cma.engine.pipeline import StepFailedError, hardware_summary, run_logged  # noqa: E402
from mpr_cma.evaluation.tiers import refcoco_tier_scores, refvos_tier_scores  # noqa: E402
from mpr_cma.evaluation.yardsticks import refcoco_every_object, refvos_every_object  # noqa: E402
from mpr_cma.visualization import find_scalars, read_scalars, series  # noqa: E402

ROWS = {
    "baseline": ("Sa2VA baseline",
                 "mba = None\ncriterion = dict(tmc_weight=0.0, bound_weight=0.0)"),
    "mba": ("+ MBA", "criterion = dict(tmc_weight=0.0, bound_weight=0.0)"),
    "mba_tmc": ("+ MBA + TMC", "criterion = dict(bound_weight=0.0)"),
    "mba_tmc_bound": ("+ MBA + TMC + Bound", ""),
    "mba_film": ("MBA w/ residual FiLM", "mba = dict(type='MaskBiasedFiLM')"),
}
SPLITS = {"refcoco_val": ["--dataset", "refcoco", "--split", "val"],
          "mevis_valid_u": ["--dataset", "mevis_u"]}
METRICS = (("cIoU", "refcoco_val"), ("gIoU", "refcoco_val"), ("J&F", "mevis_valid_u"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, required=True, help="the full-method config")
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("work_dirs/ablation"))
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=float, help="rescale the config's schedule to this many")
    p.add_argument("--procs", type=int, default=2, help="processes (GPUs) per run")
    p.add_argument("--bench-repeats", type=int, default=5, help="bench_train.py steps per row")
    return p.parse_args(argv)


def rescaled_schedule(config: Path, epochs: float) -> str:
    """The config line that trains `epochs` epochs: `max_epochs = N`. The configs' schedule
    (LR warm-up and cosine bounds, WarmupHook, the train loop) reads `max_epochs` through
    references, so all of it follows.

    Raises:
        ValueError: the config's train loop does not follow a `max_epochs` field.
    """
    try:
        with_epochs = load_config(config, {"max_epochs": epochs}, import_custom_modules=False)
    except ConfigReferenceError as err:
        raise ValueError(f"--epochs: {err}") from None
    if with_epochs.get("train_cfg", {}).get("max_epochs") != epochs:
        raise ValueError(f"--epochs: the train loop of {config} does not read a top-level "
                         "max_epochs (see configs/README.md)")
    return f"max_epochs = {epochs!r}\n"


def write_row_configs(args: argparse.Namespace) -> dict[str, Path]:
    """OUT/configs/<row>.py for each row; returns their paths."""
    folder = args.out / "configs"
    folder.mkdir(parents=True, exist_ok=True)
    schedule = ""
    if args.epochs is not None:
        schedule = rescaled_schedule(args.config, args.epochs)
    paths = {}
    for row in args.rows:
        title, override = ROWS[row]
        text = (f"# Ablation row {row!r} ({title}), written by scripts/run_ablation.py.\n"
                f"_base_ = [{str(args.config.resolve())!r}]\n{override}\n{schedule}")
        path = folder / f"{row}.py"
        path.write_text(text)
        paths[row] = path
    return paths


def run(command: list[str], log: Path) -> None:
    """Run one command (output in `log`); exit with the log's tail when it fails."""
    print(f"[ablation] {shlex.join(command)}", flush=True)
    try:
        run_logged(command, log)
    except StepFailedError as err:
        sys.exit(f"[ablation] {err}")


def fingerprint(config: Path, data_root: Path) -> str:
    """What a finished run's numbers depend on: the row config's resolved text (base
    config, override, schedule) and the data root."""
    text = json.dumps(load_config(config, import_custom_modules=False).to_dict(),
                      sort_keys=True, default=str)
    return hashlib.sha256(f"{text}\n{data_root.resolve()}".encode()).hexdigest()[:16]


def reuse(path: Path, key: str) -> dict | None:
    """A finished result made with the same settings; None if there is none. One made
    with other settings stops the sweep: its checkpoints would be resumed under the new
    settings and its numbers mixed into the table."""
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    if result.get("fingerprint") != key:
        sys.exit(f"[ablation] {path.parent} holds a run made with another config, schedule "
                 f"or data root: delete it or use another --out")
    return result


def train_and_eval(args, row: str, config: Path, seed: int) -> dict:
    """Train one (row, seed) and evaluate it; reuse a finished run's results."""
    run_dir = args.out / "runs" / row / f"seed{seed}"
    key = fingerprint(config, args.data_root)
    done = reuse(run_dir / "run.json", key)
    if done is not None:
        return done
    start = time.perf_counter()
    run(["bash", str(REPO / "tools/dist_train.sh"), str(config), str(args.procs),
         "--work-dir", str(run_dir / "train"), "--data-root", str(args.data_root),
         "--resume", "auto", "--cfg-options", f"randomness.seed={seed}"],
        run_dir / "train.log")
    train_seconds = time.perf_counter() - start
    result = {"row": row, "seed": seed, "fingerprint": key,
              "train_seconds": round(train_seconds, 1)}
    tiered = (args.data_root / TIERS_FILE).is_file()
    for split, options in SPLITS.items():
        out = run_dir / "eval" / split
        run(["bash", str(REPO / "tools/dist_test.sh"), str(config), str(args.procs),
             "--checkpoint", str(run_dir / "train"), *options, "--data-root",
             str(args.data_root), "--work-dir", str(out), "--no-progress",
             *(["--save-masks"] if tiered else [])],
            run_dir / f"eval_{split}.log")
        result[split] = json.loads((out / "results.json").read_text())["metrics"]
    if tiered:
        result["tiers"] = run_tiers(args.data_root, run_dir / "eval")
    logs = find_scalars(run_dir / "train")
    steps, times = series(read_scalars(logs), "time", logs[-1])
    # The second half of the run: start-up and warm-up iterations excluded.
    result["step_seconds"] = float(np.median(times[len(times) // 2:]))
    result["iterations"] = int(steps[-1])
    (run_dir / "run.json").write_text(json.dumps(result, indent=2))
    return result


def run_tiers(data_root: Path, eval_dir: Path) -> dict:
    """{tier: score} of one run's saved masks: image tiers cIoU, motion J&F."""
    image = refcoco_tier_scores(data_root, eval_dir / "refcoco_val" / "masks")["model"]
    video = refvos_tier_scores(data_root, eval_dir / "mevis_valid_u" / "masks")["model"]
    scores = {t: v["cIoU"] for t, v in image.items() if t != "all"}
    scores.update({t: v["J&F"] for t, v in video.items() if t != "all"})
    return scores


def tier_yardsticks(data_root: Path) -> dict[str, dict[str, float]]:
    """{"every_object" | "right_shape": {tier: score}} on the same items as `run_tiers`."""
    image = refcoco_tier_scores(data_root, None)
    video = refvos_tier_scores(data_root, None)
    return {name: {**{t: v["cIoU"] for t, v in image[name].items() if t != "all"},
                   **{t: v["J&F"] for t, v in video[name].items() if t != "all"}}
            for name in ("every_object", "right_shape")}


def tier_lines(table: dict, yardsticks: dict) -> list[str]:
    """The per-tier table of ablation.md; "*" marks a row whose difference from the first
    row exceeds the seed spread (|difference of means| > the sum of the sample stds)."""
    tiers = [t for t in TIERS if t in yardsticks["every_object"]]
    head = ["row", *[f"{t} ({'J&F' if t == 'motion' else 'cIoU'})" for t in tiers]]
    lines = ["", "Per tier (mean ± sample std over seeds; * = beyond the seed spread of the "
             "first row):", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    first = next(iter(table.values()))
    for e in table.values():
        cells = [e["title"]]
        for t in tiers:
            (mean, std), (m0, s0) = e["tiers"][t], first["tiers"][t]
            beyond = e is not first and std is not None and s0 is not None and (
                abs(mean - m0) > std + s0)
            cells.append(fmt(mean, std) + (" *" if beyond else ""))
        lines.append("| " + " | ".join(cells) + " |")
    for name, label in (("every_object", "every object"),
                        ("right_shape", "right shape, any instance")):
        lines.append(f"| yardstick: {label} | "
                     + " | ".join(f"{yardsticks[name][t]:.3f}" for t in tiers) + " |")
    return lines


def bench_memory(args, row: str, config: Path) -> dict:
    """scripts/bench_train.py on the row's model: activation / state bytes (CUDA peak)."""
    out = args.out / "bench" / f"{row}.json"
    key = fingerprint(config, args.data_root)
    done = reuse(out, key)
    if done is None:
        run([sys.executable, str(REPO / "scripts/bench_train.py"), str(config), "--repeats",
             str(args.bench_repeats), "--json", str(out)], args.out / "bench" / f"{row}.log")
        done = {**json.loads(out.read_text()), "fingerprint": key}
        out.write_text(json.dumps(done, indent=2))
    return done["results"]["model"]


def mean_std(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def fmt(mean: float, std: float | None, digits: int = 3) -> str:
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def summarise(args, runs: list[dict], bench: dict[str, dict], yardsticks: dict) -> dict:
    table = {}
    for row in args.rows:
        mine = [r for r in runs if r["row"] == row]
        entry = {"title": ROWS[row][0], "seeds": [r["seed"] for r in mine]}
        for metric, split in METRICS:
            entry[metric] = mean_std([r[split][metric] for r in mine])
        entry["step_seconds"] = mean_std([r["step_seconds"] for r in mine])
        if all("tiers" in r for r in mine):
            entry["tiers"] = {t: mean_std([r["tiers"][t] for r in mine])
                              for t in mine[0]["tiers"]}
        b = bench[row]
        entry["activation_mib"] = b["activation_bytes"] / 2**20
        entry["state_mib"] = b["state_bytes"] / 2**20
        entry["trainable"] = b["trainable"]
        if "cuda_peak_bytes" in b:
            entry["cuda_peak_mib"] = b["cuda_peak_bytes"] / 2**20
        table[row] = entry
    return table


def write_outputs(args, table: dict, runs: list[dict], yardsticks: dict, hardware: str) -> None:
    cuda = any("cuda_peak_mib" in e for e in table.values())
    head = ["row", "RefCOCO val cIoU", "gIoU", "MeViS valid_u J&F", "s / iter",
            "activations MiB", "state MiB", "trainable"] + (["CUDA peak MiB"] if cuda else [])
    lines = [f"Seeds {args.seeds}, {args.procs} processes, data {args.data_root}, config "
             f"{args.config}" + (f", {args.epochs} epochs" if args.epochs else "") +
             f"; {hardware}. Mean ± sample std over seeds.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    with (args.out / "ablation.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["row", "metric", "mean", "std", "n"])
        for row, e in table.items():
            cells = [e["title"], fmt(*e["cIoU"]), fmt(*e["gIoU"]), fmt(*e["J&F"]),
                     fmt(*e["step_seconds"], digits=3), f"{e['activation_mib']:.2f}",
                     f"{e['state_mib']:.2f}", f"{e['trainable']:,}"]
            if cuda:
                cells.append(f"{e.get('cuda_peak_mib', float('nan')):.1f}")
            lines.append("| " + " | ".join(cells) + " |")
            for metric in ("cIoU", "gIoU", "J&F", "step_seconds"):
                mean, std = e[metric]
                writer.writerow([row, metric, mean, "" if std is None else std,
                                 len(e["seeds"])])
            for metric in ("activation_mib", "state_mib", "trainable"):
                writer.writerow([row, metric, e[metric], "", 1])
        y_img, y_vid = yardsticks["refcoco_val"], yardsticks["mevis_valid_u"]
        lines.append(f"| yardstick: every object | {y_img['cIoU']:.3f} | {y_img['gIoU']:.3f} "
                     f"| {y_vid['J&F']:.3f} |" + " - |" * (len(head) - 4))
        for metric, value in (("cIoU", y_img["cIoU"]), ("gIoU", y_img["gIoU"]),
                              ("J&F", y_vid["J&F"])):
            writer.writerow(["every_object", metric, value, "", 1])
    if "tiers" in yardsticks and all("tiers" in e for e in table.values()):
        lines += tier_lines(table, yardsticks["tiers"])
    (args.out / "ablation.md").write_text("\n".join(lines) + "\n")
    (args.out / "ablation.json").write_text(json.dumps(
        {"args": {k: v if isinstance(v, list | int | float | None) else str(v)
                  for k, v in vars(args).items()}, "hardware": hardware,
         "table": table, "runs": runs, "yardsticks": yardsticks}, indent=2))
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.data_root / "refcoco").is_dir():
        sys.exit(f"--data-root {args.data_root}: no refcoco/ folder (generate the synthetic "
                 f"data with scripts/make_synthetic_data.py)")
    configs = write_row_configs(args)
    hardware = hardware_summary()
    runs = []
    total = len(args.rows) * len(args.seeds)
    for i, (row, seed) in enumerate((r, s) for r in args.rows for s in args.seeds):
        print(f"[ablation] run {i + 1}/{total}: {row} seed {seed}", flush=True)
        runs.append(train_and_eval(args, row, configs[row], seed))
    bench = {row: bench_memory(args, row, configs[row]) for row in args.rows}
    yardsticks = {"refcoco_val": refcoco_every_object(args.data_root, "refcoco", "val"),
                  "mevis_valid_u": refvos_every_object(args.data_root / "mevis" / "valid_u")}
    if (args.data_root / TIERS_FILE).is_file():
        yardsticks["tiers"] = tier_yardsticks(args.data_root)
    write_outputs(args, summarise(args, runs, bench, yardsticks), runs, yardsticks, hardware)
    return 0


if __name__ == "__main__":
    sys.exit(main())
