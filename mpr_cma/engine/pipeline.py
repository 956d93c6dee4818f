"""Helpers of the multi-step drivers (scripts/run_demo.py, scripts/run_ablation.py): run the
project's own commands as subprocesses with their output in log files.

Each torchrun launch gets a free master port (`PORT` for tools/dist_*.sh), so a driver
can run beside another training on the same machine.
"""

import os
import platform
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

# The checkout this package runs from (an editable install); put on PYTHONPATH.
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hardware_summary() -> str:
    """One line naming the machine: architecture, CPU cores, torch, GPU."""
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, {gpu}"


class StepFailedError(RuntimeError):
    """A command exited non-zero; the message names it, its log and the log's tail."""


def run_logged(command: Sequence[str], log: str | Path, tail_lines: int = 25,
               on_line: Callable[[str], None] | None = None) -> float:
    """Run `command` with stdout and stderr in `log`; return its wall time in seconds.

    The repository root is put on PYTHONPATH (configs may import project modules), PORT
    is set to a free port for torchrun, and PYTHON to this interpreter (tools/dist_*.sh
    run `$PYTHON`), so every step uses the same environment. `on_line` is called with
    every line of the output as it comes (a carriage return also ends a line, so tqdm
    updates are seen), e.g. to show progress; the log gets the output unchanged.

    Raises:
        StepFailedError: non-zero exit status.
    """
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PORT": str(free_port()), "PYTHON": sys.executable,
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH"))
                                         if p)}
    start = time.perf_counter()
    with log.open("wb") as out:
        if on_line is None:
            code = subprocess.call(list(command), stdout=out, stderr=subprocess.STDOUT,
                                   env=env)
        else:
            code = _call_with_lines(command, out, env, on_line)
    if code != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-tail_lines:])
        raise StepFailedError(f"{shlex.join(command)} failed (exit {code}); log {log}:\n{tail}")
    return time.perf_counter() - start


_LINE_END = re.compile(rb"[\r\n]")


def _call_with_lines(command: Sequence[str], out, env: dict,
                     on_line: Callable[[str], None]) -> int:
    """subprocess.call with the output copied to `out` and split into lines for `on_line`."""
    proc = subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=env)
    pending = b""
    for chunk in iter(lambda: proc.stdout.read1(65536), b""):
        out.write(chunk)
        out.flush()
        *lines, pending = _LINE_END.split(pending + chunk)
        for line in lines:
            if line:
                on_line(line.decode(errors="replace"))
    if pending:
        on_line(pending.decode(errors="replace"))
    return proc.wait()


class StepProgress:
    """`on_line` for `run_logged` that shows a step's progress as a tqdm bar on stderr.

    Reads the two progress formats of the project's commands: mmengine's training log
    lines (``Iter(train) [ 120/1610] ... eta: 0:04:10 ... loss: 1.234``) and tqdm bars
    (``47/677 [00:10<00:12, ...]``, the evaluations). Other lines only go to the log.
    """

    TRAIN = re.compile(r"Iter\(train\)\s*\[\s*(\d+)/(\d+)\]")
    TQDM = re.compile(r"(\d+)/(\d+) \[[\d:]+<([\d:?]+)")
    ETA = re.compile(r"\beta: ((?:\d+ days?, )?[\d:]+)")
    LOSS = re.compile(r"\bloss: ([-\d.e]+)")

    def __init__(self, name: str, disable: bool | None = None):
        from tqdm import tqdm  # the drivers' only tqdm use; keeps this module light

        # Until a progress line comes, the elapsed time only (a step may print none).
        self.bar = tqdm(desc=name, total=None, unit="it", file=sys.stderr, disable=disable,
                        dynamic_ncols=True, leave=True, bar_format="{desc}: {elapsed}")

    def __call__(self, line: str) -> None:
        """Update the bar from one output line, if it carries progress."""
        train = self.TRAIN.search(line)
        bar = self.TQDM.search(line) if train is None else None
        match = train or bar
        if match is None:
            return
        done, total = int(match.group(1)), int(match.group(2))
        if self.bar.total != total:
            self.bar.bar_format = None
            self.bar.reset(total=total)
        self.bar.n = done
        info = {}
        if train is not None:
            eta, loss = self.ETA.search(line), self.LOSS.search(line)
            if loss:
                info["loss"] = loss.group(1)
            if eta:
                info["eta"] = eta.group(1)
        else:
            info["eta"] = bar.group(3)
        self.bar.set_postfix(info, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        """End the bar (call when the command has finished)."""
        self.bar.close()
