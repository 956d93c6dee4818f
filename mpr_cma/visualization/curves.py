"""Training curves from mmengine's `vis_data/scalars.json` (one JSON object per logged step).

`read_scalars` turns the log into {name: (steps, values)}; `plot_training_curves` draws the
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


def find_scalars(work_dir: str | Path) -> Path:
    """The newest `<timestamp>/vis_data/scalars.json` of an mmengine work dir.

    Raises:
        FileNotFoundError: the work dir holds no scalars.json (the message names it).
    """
    found = sorted(Path(work_dir).glob("*/vis_data/scalars.json"))
    if not found:
        raise FileNotFoundError(f"no */vis_data/scalars.json under {work_dir}")
    return found[-1]


def read_scalars(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read scalars.json: {name: (steps int64 (N,), values float64 (N,))}, in log order.

    Lines without a "step" (or unreadable ones) are errors naming the file and the line.
    """
    path = Path(path)
    series: dict[str, tuple[list, list]] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            step = int(row["step"])
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}:{number}: not a scalars line with a 'step' ({err})") \
                from err
        for name, value in row.items():
            if name in ("step", "iter", "epoch") or not isinstance(value, int | float):
                continue
            steps, values = series.setdefault(name, ([], []))
            steps.append(step)
            values.append(float(value))
    return {k: (np.asarray(s, np.int64), np.asarray(v, np.float64))
            for k, (s, v) in series.items()}


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
