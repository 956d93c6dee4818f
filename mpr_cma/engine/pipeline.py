"""Helpers of the multi-step drivers (scripts/run_demo.py, scripts/run_ablation.py): run the
project's own commands as subprocesses with their output in log files.

Each torchrun launch gets a free master port (`PORT` for tools/dist_*.sh), so a driver
can run beside another training on the same machine.
"""

import os
import platform
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
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


def run_logged(command: Sequence[str], log: str | Path, tail_lines: int = 25) -> float:
    """Run `command` with stdout and stderr in `log`; return its wall time in seconds.

    The repository root is put on PYTHONPATH (configs may import project modules), PORT
    is set to a free port for torchrun, and PYTHON to this interpreter (tools/dist_*.sh
    run `$PYTHON`), so every step uses the same environment.

    Raises:
        StepFailedError: non-zero exit status.
    """
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PORT": str(free_port()), "PYTHON": sys.executable,
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH"))
                                         if p)}
    start = time.perf_counter()
    with log.open("w") as out:
        code = subprocess.call(list(command), stdout=out, stderr=subprocess.STDOUT, env=env)
    if code != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-tail_lines:])
        raise StepFailedError(f"{shlex.join(command)} failed (exit {code}); log {log}:\n{tail}")
    return time.perf_counter() - start
