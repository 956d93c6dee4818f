"""Tiny training through tools/dist_train.sh on a data root the test writes in the real
RefCOCO / MeViS / LLaVA layouts: real readers, sa2va_collate, DeepSpeed ZeRO-2, gloo."""

import json
import math
import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.datasets._train_data import write_llava_root, write_refcoco_root, write_refvos_root

ROOT = Path(__file__).resolve().parents[2]
TERMS = ("loss_llm", "loss_mask", "loss_dice", "loss_tmc", "loss_bound")

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_zero2_run_on_real_formats(tmp_path):
    data = tmp_path / "data_tiny"  # the config's data_root, relative to the working dir
    write_refcoco_root(data)
    write_refvos_root(data / "mevis" / "train")
    write_llava_root(data / "llava")
    env = dict(os.environ, OMP_NUM_THREADS="1", PORT=str(_free_port()))
    proc = subprocess.run(
        ["bash", str(ROOT / "tools/dist_train.sh"), str(ROOT / "configs/tiny/train_tiny_data.py"),
         "2", "--work-dir", "work", "--cfg-options", "train_cfg.max_epochs=2"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    logs = sorted((tmp_path / "work").glob("*/vis_data/scalars.json"))
    assert logs, "no scalars.json written"
    rows = [json.loads(line) for line in logs[-1].read_text().splitlines()]
    train = [r for r in rows if "loss" in r]
    assert train, rows
    for term in TERMS:
        values = [r[term] for r in train if term in r]
        assert values and all(math.isfinite(v) for v in values), term
    assert (tmp_path / "work" / "last_checkpoint").is_file()
