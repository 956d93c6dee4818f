"""Training curves from mmengine's `vis_data/scalars.json` (one JSON object per logged step).

`read_scalars` turns the log(s) into {name: (steps, values)}; `plot_training_curves` draws the
loss terms (left), and the learning rate, MBA's gamma and the warm-up scales (right) into
one PNG. Matplotlib runs on the non-interactive Agg backend, so no display is needed.
"""

import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mpr_cma.visualization.figures import save_figure  # noqa: E402

SCHEDULE_KEYS = ("lr", "gamma", "mba_warmup", "aux_warmup")


def find_scalars(work_dir: str | Path) -> list[Path]:
    """Every `<timestamp>/vis_data/scalars.json` of an mmengine work dir, oldest first (a
    resumed run logs into a new timestamp folder).

    Raises:
        FileNotFoundError: the work dir holds no scalars.json (the message names it).
    """
    found = sorted(Path(work_dir).glob("*/vis_data/scalars.json"))
    if not found:
        raise FileNotFoundError(f"no */vis_data/scalars.json under {work_dir}")
    return found


def read_scalars(paths: str | Path | list[Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read scalars.json file(s): {name: (steps int64 (N,), values float64 (N,))}.

    Several files (a run and its resumptions, oldest first) are merged by step; a step
    logged twice (a run killed after its last checkpoint, then resumed) keeps the later
    value. Lines without a "step" are errors naming the file and the line.
    """
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    merged: dict[str, dict[int, float]] = {}
    for path in map(Path, paths):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                step = int(row["step"])
            except (ValueError, KeyError, TypeError) as err:
                raise ValueError(f"{path}:{number}: not a scalars line with a 'step' "
                                 f"({err})") from err
            for name, value in row.items():
                if name in ("step", "iter", "epoch") or not isinstance(value, int | float):
                    continue
                merged.setdefault(name, {})[step] = float(value)
    out = {}
    for name, by_step in merged.items():
        steps = np.asarray(sorted(by_step), np.int64)
        out[name] = (steps, np.asarray([by_step[s] for s in steps.tolist()], np.float64))
    return out


def series(scalars: dict[str, tuple[np.ndarray, np.ndarray]], name: str,
           where: str | Path = "the log") -> tuple[np.ndarray, np.ndarray]:
    """One non-empty series of `read_scalars` output, or an error naming it and `where`."""
    if name not in scalars or len(scalars[name][0]) == 0:
        raise KeyError(f"{where}: no logged values of {name!r} (have {sorted(scalars)})")
    return scalars[name]


def plot_training_curves(scalars: dict[str, tuple[np.ndarray, np.ndarray]], out: str | Path,
                         loss_keys: Sequence[str] | None = None, title: str = "") -> Path:
    """Plot loss terms and schedules of a run into a PNG.

    Args:
        scalars: `read_scalars` output.
        out: PNG path (parents are created).
        loss_keys: loss series to draw; default every name starting with "loss".
        title: figure title.

    Returns:
        The PNG path.

    Raises:
        ValueError: no loss series to draw.
    """
    keys = list(loss_keys) if loss_keys is not None else sorted(
        k for k in scalars if k.startswith("loss"))
    keys = [k for k in keys if k in scalars]
    if not keys:
        raise ValueError(f"no loss series to plot (have {sorted(scalars)})")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for key in keys:
        steps, values = scalars[key]
        left.plot(steps, values, label=key, linewidth=1.2 if key == "loss" else 0.9)
    left.set_xlabel("iteration")
    left.set_ylabel("loss (weighted)")
    left.set_yscale("log")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    for key in SCHEDULE_KEYS:
        if key in scalars:
            steps, values = scalars[key]
            scale = values.max() if key == "lr" and values.max() > 0 else 1.0
            label = f"lr / {scale:.1e}" if key == "lr" else key
            right.plot(steps, values / scale, label=label)
    right.set_xlabel("iteration")
    right.set_title("schedules", fontsize=10)
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return save_figure(fig, out)
