"""CPU seconds of our DAVIS J / F and MeViS scoring against the official code, in one run.

Usage:
    python scripts/bench_metrics.py \
        --official-davis DAVIS_EVAL/davis2017/metrics.py \
        --official-mevis MEVIS/tools/eval_mevis.py \
        [--fixture tests/fixtures/davis17_masks] [--rounds 5]

DAVIS_EVAL and MEVIS are checkouts of davisvideochallenge/davis2017-evaluation and
henghuiding/MeViS (the official code is run from there, never copied).

Two ratios, official CPU seconds / ours, each the median over `--rounds` rounds in which
the two sides alternate (the machine may be shared, so only ratios measured side by side
count):

* DAVIS J / F functions: every reference object of the fixture (real DAVIS 2017 masks),
  `region_and_boundary` (J and F per frame; the MeViS scorer calls its many-pair form,
  `region_and_boundary_pairs`, which gives the same values) against the
  official `db_eval_iou` + `db_eval_boundary(bound_th=0.008)`, imported from
  `--official-davis` into this process;
  the masks are read once, only the metric calls are timed (time.process_time). Every
  per-frame value must equal the official one exactly, and the fixture's recorded
  official values (expected_official.json).
* MeViS protocol, end to end: a MeViS-layout split built from the fixture's masks (per
  video `--per-video` expressions; the ground truth of an expression is a union of
  reference objects, stored as RLE in mask_dict.json, its prediction a union of predicted
  objects, written as 0/255 PNGs). `tools/test.py --eval-only --dataset mevis_u` against
  the official `eval_mevis.py`, each in a fresh process (interpreter start and imports
  included); CPU seconds of the process and its children (getrusage). The official script
  is run from its checkout, unmodified except its hard-coded worker count (64), set to
  `--official-workers` in memory. Every expression's J and F must be equal in both.

Also prints the CPU seconds of `tools/test.py --help` (median of the rounds).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FIXTURE = REPO / "tests" / "fixtures" / "davis17_masks"
TEST_PY = REPO / "tools" / "test.py"

# Runs the official eval_mevis.py as its own __main__ from its folder (it imports its
# sibling metrics.py), with its worker count replaced in memory.
OFFICIAL_MEVIS_RUNNER = """
import sys
path, workers = sys.argv[1], int(sys.argv[2])
sys.argv = [path] + sys.argv[3:]
sys.path.insert(0, path.rsplit('/', 1)[0])
source = open(path).read()
assert source.count('NUM_WOEKERS = 64') == 1, 'unexpected eval_mevis.py'
source = source.replace('NUM_WOEKERS = 64', f'NUM_WOEKERS = {workers}')
exec(compile(source, path, 'exec'), {'__name__': '__main__', '__file__': path})
"""


def read_sequence(folder: Path) -> tuple[list[str], np.ndarray]:
    """Frame names and the uint8 (T, H, W) object-id masks of one sequence folder."""
    files = sorted(folder.glob("*.png"))
    return [f.stem for f in files], np.stack([np.array(Image.open(f)) for f in files])


def load_pairs(fixture: Path) -> tuple[list[tuple[str, np.ndarray, np.ndarray]], dict]:
    """[(seq/obj, gt (T, H, W) bool, pred (T, H, W) bool)] per reference object, and the
    fixture's official per-frame values."""
    expected = json.loads((fixture / "expected_official.json").read_text())["per_sequence"]
    pairs = []
    for seq, objects in expected.items():
        _, ref = read_sequence(fixture / "reference" / seq)
        _, pred = read_sequence(fixture / "prediction" / seq)
        pairs += [(f"{seq}/{k}", ref == int(k), pred == int(k)) for k in objects]
    return pairs, expected


def cpu_of(fn) -> float:
    """CPU seconds (all threads of this process) of one call of `fn`."""
    start = time.process_time()
    fn()
    return time.process_time() - start


def cpu_of_process(cmd: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    """CPU seconds (user + system) of a child process and every descendant it waited for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, proc


def load_official(path: Path):
    """Import `path` as a module; it must define db_eval_iou and db_eval_boundary."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("official_davis_metrics", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def report(name: str, ours: list[float], official: list[float]) -> None:
    ratios = [o / u for o, u in zip(official, ours, strict=True)]
    print(f"{name}: ours {statistics.median(ours):.3f} CPU-s, official "
          f"{statistics.median(official):.3f} CPU-s (medians of {len(ours)}); ratio "
          f"official / ours: median {statistics.median(ratios):.2f}x "
          f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})")


def bench_davis(fixture: Path, official_path: Path, rounds: int) -> None:
    from mpr_cma.evaluation.metrics import (
        boundary_f_measure,
        region_and_boundary,
        region_similarity,
    )

    pairs, expected = load_pairs(fixture)
    n_frames = sum(len(gt) for _, gt, _ in pairs)
    print(f"DAVIS J/F: {fixture} ({len(pairs)} objects, {n_frames} object-frames)")
    official = load_official(official_path)
    worst = 0.0
    for name, gt, pred in pairs:
        seq, k = name.split("/")
        ours = region_and_boundary(gt, pred)
        if not all(np.array_equal(a, b) for a, b in zip(
                ours, (region_similarity(gt, pred), boundary_f_measure(gt, pred)), strict=True)):
            sys.exit(f"{name}: region_and_boundary differs from the single measures")
        theirs = (official.db_eval_iou(gt, pred),
                  official.db_eval_boundary(gt, pred, bound_th=0.008))
        for key, a, b in zip("JF", ours, theirs, strict=True):
            if not np.array_equal(a, b):
                sys.exit(f"{name} {key}: differs from the official code")
            worst = max(worst, float(np.abs(a - expected[seq][k][key]).max()))
    print(f"  every per-frame J and F == the official code's; max |difference| from "
          f"expected_official.json: {worst:.1e}")

    def run_ours():
        for _, g, p in pairs:
            region_and_boundary(g, p)

    def run_official():
        for _, g, p in pairs:
            official.db_eval_iou(g, p)
            official.db_eval_boundary(g, p, bound_th=0.008)

    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(cpu_of(run_ours))
        theirs.append(cpu_of(run_official))
    report("  J/F functions", ours, theirs)


def build_mevis_case(fixture: Path, out: Path, per_video: int) -> int:
    """Write a MeViS valid_u-style split + PNG predictions from the fixture; return the
    number of expressions (see the module docstring)."""
    videos, mask_dict = {}, {}
    pred_root = out / "pred"
    next_anno = 0
    for seq in sorted(p.name for p in (fixture / "reference").iterdir() if p.is_dir()):
        frames, ref = read_sequence(fixture / "reference" / seq)
        _, pred = read_sequence(fixture / "prediction" / seq)
        ref_ids = [int(i) for i in np.unique(ref) if i]
        pred_ids = [int(i) for i in np.unique(pred) if i]
        anno = {}
        for obj in ref_ids:
            anno[obj] = next_anno
            rles = []
            for t in range(len(frames)):
                m = ref[t] == obj
                rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
                rles.append({"size": [int(s) for s in rle["size"]],
                             "counts": rle["counts"].decode("ascii")} if m.any() else None)
            mask_dict[str(next_anno)] = rles
            next_anno += 1
        subsets = [c for n in range(1, len(ref_ids) + 1) for c in combinations(ref_ids, n)]
        expressions = {}
        for j in range(per_video):
            objects = subsets[j % len(subsets)]
            chosen = sorted({pred_ids[j % len(pred_ids)],
                             pred_ids[(3 * j + 1) % len(pred_ids)]})
            expressions[str(j)] = {"exp": f"expression {j}", "obj_id": list(objects),
                                   "anno_id": [anno[o] for o in objects]}
            folder = pred_root / seq / str(j)
            folder.mkdir(parents=True)
            masks = np.isin(pred, chosen).astype(np.uint8) * 255
            for name, m in zip(frames, masks, strict=True):
                Image.fromarray(m).save(folder / f"{name}.png")
        videos[seq] = {"expressions": expressions, "frames": frames}
    (out / "meta_expressions.json").write_text(json.dumps({"videos": videos}))
    (out / "mask_dict.json").write_text(json.dumps(mask_dict))
    return sum(len(v["expressions"]) for v in videos.values())


def distinct_predictions(case: Path) -> tuple[int, int]:
    """(prediction PNGs, distinct (video, frame, file bytes)) of a built case: how much
    the scoring's decode cache can save on it."""
    files = list((case / "pred").glob("*/*/*.png"))
    distinct = {(f.parent.parent.name, f.name, f.read_bytes()) for f in files}
    return len(files), len(distinct)


def bench_mevis(fixture: Path, official_path: Path, rounds: int, per_video: int,
                workers: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench_mevis_") as tmp:
        case = Path(tmp)
        n = build_mevis_case(fixture, case, per_video)
        files, distinct = distinct_predictions(case)
        print(f"MeViS protocol: {n} expressions from {fixture}; {files} prediction PNGs, "
              f"{distinct} distinct per video frame")
        ours_cmd = [sys.executable, str(TEST_PY), "--eval-only", "--dataset", "mevis_u",
                    "--gt", str(case), "--pred", str(case / "pred"), "--work-dir",
                    str(case / "ours"), "--no-progress"]
        official_cmd = [sys.executable, "-c", OFFICIAL_MEVIS_RUNNER, str(official_path),
                        str(workers), "--mevis_exp_path", str(case / "meta_expressions.json"),
                        "--mevis_mask_path", str(case / "mask_dict.json"),
                        "--mevis_pred_path", str(case / "pred"),
                        "--save_name", str(case / "official.json")]
        ours, theirs = [], []
        for r in range(rounds):
            cpu, _ = cpu_of_process(ours_cmd, case)
            ours.append(cpu)
            cpu, proc = cpu_of_process(official_cmd, case)
            theirs.append(cpu)
            if r == 0:
                check_mevis_numbers(case, proc.stdout, n)
        report(f"  tools/test.py --eval-only vs eval_mevis.py ({workers} workers)", ours, theirs)


def check_mevis_numbers(case: Path, official_stdout: str, n: int) -> None:
    """Every expression's J and F equal in both results; print the benchmark numbers."""
    ours = json.loads((case / "ours" / "results.json").read_text())
    official = json.loads((case / "official.json").read_text())
    per_item = ours["per_item"]
    if len(official) != n or len(per_item) != n:
        sys.exit(f"expression counts differ: ours {len(per_item)}, official {len(official)}")
    for key, item in per_item.items():
        j, f = official[key.replace("/", "_", 1)]
        if (item["J"], item["F"]) != (j, f):
            sys.exit(f"{key}: ours J {item['J']!r} F {item['F']!r}, official {j!r} {f!r}")
    m = ours["metrics"]
    printed = [line for line in official_stdout.splitlines() if line[:2] in ("J:", "F:", "J&")]
    print(f"  every expression's J and F == the official script's; ours: J {m['J']!r} "
          f"F {m['F']!r} J&F {m['J&F']!r}; official printed: " + " ".join(printed))


def bench_help(rounds: int) -> None:
    cpus = [cpu_of_process([sys.executable, str(TEST_PY), "--help"], REPO)[0]
            for _ in range(rounds)]
    print(f"tools/test.py --help: {statistics.median(cpus):.3f} CPU-s (median of {rounds})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixture", type=Path, default=DEFAULT_FIXTURE,
                        help="DAVIS masks: reference/, prediction/, expected_official.json")
    parser.add_argument("--official-davis", type=Path, required=True,
                        help="davis2017-evaluation's davis2017/metrics.py")
    parser.add_argument("--official-mevis", type=Path,
                        help="MeViS's tools/eval_mevis.py (next to its metrics.py)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (median)")
    parser.add_argument("--per-video", type=int, default=26, help="MeViS expressions a video")
    parser.add_argument("--official-workers", type=int, default=2,
                        help="processes of eval_mevis.py (its own default is 64)")
    args = parser.parse_args()
    if not (args.fixture / "expected_official.json").is_file():
        sys.exit(f"fixture not found: {args.fixture} (no expected_official.json)")
    for path in (args.official_davis, args.official_mevis):
        if path is not None and not path.is_file():
            sys.exit(f"official code not found: {path}")
    bench_davis(args.fixture, args.official_davis, args.rounds)
    if args.official_mevis is not None:
        bench_mevis(args.fixture, args.official_mevis.resolve(), args.rounds, args.per_video,
                    args.official_workers)
    bench_help(args.rounds)


if __name__ == "__main__":
    main()
