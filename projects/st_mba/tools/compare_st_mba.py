"""Per-frame MBA vs spatio-temporal MBA on the synthetic benchmark, several seeds, one table.

Usage:
    python scripts/make_synthetic_data.py --out work_dirs/st_mba/data --seed 0 \\
        --attribute-train-images 1200
    python projects/st_mba/tools/compare_st_mba.py --data-root work_dirs/st_mba/data \\
        --seeds 0 1 2 --out work_dirs/st_mba/compare [--arms per_frame st_mba] [--epochs N]

Each arm is the full method (MBA + TMC + boundary loss, the demo recipe) with one MBA:
    per_frame     configs/tiny/demo.py (the paper's frame-by-frame MBA)
    st_mba        projects/st_mba/configs/st_mba_demo.py (temporal prior + track attention)
    st_mba_prior  projects/st_mba/configs/st_mba_prior_demo.py (temporal prior only)
    st_mba_track  projects/st_mba/configs/st_mba_track_demo.py (track attention only)
Every arm is trained, evaluated and benchmarked by the project's own sweep,
`scripts/run_ablation.py --rows mba_tmc_bound` (its row "full method" = the arm's config
unchanged), under OUT/<arm>/; finished runs are reused. This script then writes
OUT/compare.md and OUT/compare.json: mean ± sample std over seeds of RefCOCO-layout val
cIoU / gIoU and MeViS-layout valid_u J&F, training s / iter, and the ratios of step time and
of activation memory to the per-frame arm; on synthetic data (a tiers.json in the data root)
also a table per tier (attribute, spatial, size, ordinal cIoU; motion J&F) with each arm's
difference from the per-frame arm marked when it exceeds the seed spread.

Without --epochs every arm trains the demo's own schedule, so the per-frame arm is the same
run as the full-method row of `scripts/run_ablation.py --config configs/tiny/demo.py` on the
same data root (the same fingerprint: one sweep's runs can be linked into the other's
OUT/<arm>/runs/mba_tmc_bound/ and are reused, not retrained).
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from mpr_cma.datasets.synthetic import TIERS  # noqa: E402

CONFIGS = ROOT / "projects" / "st_mba" / "configs"
ARMS = {"per_frame": ROOT / "configs" / "tiny" / "demo.py",
        "st_mba": CONFIGS / "st_mba_demo.py",
        "st_mba_prior": CONFIGS / "st_mba_prior_demo.py",
        "st_mba_track": CONFIGS / "st_mba_track_demo.py"}
ROW = "mba_tmc_bound"  # run_ablation.py's row that leaves the config as it is
METRICS = (("cIoU", "refcoco_val"), ("gIoU", "refcoco_val"), ("J&F", "mevis_valid_u"))



def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("work_dirs/st_mba/compare"))
    p.add_argument("--arms", nargs="+", default=["per_frame", "st_mba"], choices=list(ARMS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=float,
                   help="rescale every arm's schedule to this many epochs (default: the "
                        "configs' own, the demo's 4)")
    p.add_argument("--procs", type=int, default=2)
    return p.parse_args(argv)


def sweep(args, arm: str) -> dict:
    """run_ablation.py for one arm; its ablation.json."""
    out = args.out / arm
    command = [sys.executable, str(ROOT / "scripts" / "run_ablation.py"), "--config",
               str(ARMS[arm]), "--data-root", str(args.data_root), "--out", str(out),
               "--rows", ROW, "--seeds", *map(str, args.seeds), "--procs", str(args.procs)]
    if args.epochs is not None:
        command += ["--epochs", str(args.epochs)]
    print(f"[compare] {arm}: {' '.join(command)}", flush=True)
    subprocess.run(command, check=True, cwd=ROOT)
    return json.loads((out / "ablation.json").read_text())


def fmt(values: list[float]) -> str:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.3f}"
    return f"{mean:.3f} ± {statistics.stdev(values):.3f}"


def summarise(results: dict[str, dict]) -> tuple[list[str], dict]:
    base = results.get("per_frame")
    head = ["arm", "RefCOCO val cIoU", "gIoU", "MeViS valid_u J&F", "s / iter",
            "step time / per-frame", "activations MiB", "activations / per-frame",
            "trainable"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    table = {}
    for arm, res in results.items():
        runs = [r for r in res["runs"] if r["row"] == ROW]
        entry = res["table"][ROW]
        row = {"seeds": [r["seed"] for r in runs],
               **{m: [r[split][m] for r in runs] for m, split in METRICS},
               "step_seconds": [r["step_seconds"] for r in runs],
               "activation_mib": entry["activation_mib"], "trainable": entry["trainable"]}
        if base is not None:
            b = base["table"][ROW]
            row["step_ratio"] = entry["step_seconds"][0] / b["step_seconds"][0]
            row["activation_ratio"] = entry["activation_mib"] / b["activation_mib"]
        table[arm] = row
        lines.append("| " + " | ".join([
            arm, fmt(row["cIoU"]), fmt(row["gIoU"]), fmt(row["J&F"]), fmt(row["step_seconds"]),
            f"{row.get('step_ratio', float('nan')):.3f}", f"{row['activation_mib']:.2f}",
            f"{row.get('activation_ratio', float('nan')):.3f}", f"{row['trainable']:,}"]) + " |")
    any_res = next(iter(results.values()))
    y_img, y_vid = any_res["yardsticks"]["refcoco_val"], any_res["yardsticks"]["mevis_valid_u"]
    lines.append(f"| yardstick: every object | {y_img['cIoU']:.3f} | {y_img['gIoU']:.3f} | "
                 f"{y_vid['J&F']:.3f} |" + " - |" * (len(head) - 4))
    return lines, table


def tier_lines(results: dict[str, dict]) -> list[str]:
    """Per-tier table (mean ± sample std over seeds); "*" marks an arm whose difference from
    the per-frame arm exceeds the seed spread (|difference of means| > the sum of the two
    sample stds). Empty when the sweeps have no tier scores (data without tiers.json)."""
    if not all("tiers" in res["table"][ROW] for res in results.values()):
        return []
    yard = next(iter(results.values()))["yardsticks"]["tiers"]
    tiers = [t for t in TIERS if t in yard["every_object"]]
    head = ["arm", *[f"{t} ({'J&F' if t == 'motion' else 'cIoU'})" for t in tiers]]
    lines = ["", "Per tier (mean ± sample std over seeds; * = beyond the seed spread of the "
             "per-frame arm):", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base = results.get("per_frame")
    for arm, res in results.items():
        cells = [arm]
        for t in tiers:
            mean, std = res["table"][ROW]["tiers"][t]
            mark = ""
            if base is not None and arm != "per_frame":
                m0, s0 = base["table"][ROW]["tiers"][t]
                if std is not None and s0 is not None and abs(mean - m0) > std + s0:
                    mark = " *"
            cells.append(f"{mean:.3f}" + ("" if std is None else f" ± {std:.3f}") + mark)
        lines.append("| " + " | ".join(cells) + " |")
    for name, label in (("every_object", "every object"),
                        ("right_shape", "right shape, any instance")):
        lines.append(f"| yardstick: {label} | "
                     + " | ".join(f"{yard[name][t]:.3f}" for t in tiers) + " |")
    return lines


def main(argv=None) -> int:
    args = parse_args(argv)
    results = {arm: sweep(args, arm) for arm in args.arms}
    lines, table = summarise(results)
    lines += tier_lines(results)
    hardware = next(iter(results.values()))["hardware"]
    epochs = "the configs' epochs" if args.epochs is None else f"{args.epochs} epochs"
    text = (f"Seeds {args.seeds}, {epochs}, {args.procs} processes, data "
            f"{args.data_root}; {hardware}. Mean ± sample std over seeds.\n\n"
            + "\n".join(lines) + "\n")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compare.md").write_text(text)
    (args.out / "compare.json").write_text(json.dumps(
        {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
         "hardware": hardware, "table": table}, indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
