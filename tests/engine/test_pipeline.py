"""mpr_cma.engine.pipeline: run_logged keeps the whole output in the log and hands its
lines (tqdm's carriage returns included) to on_line; StepProgress reads the progress."""

import sys

import pytest

from mpr_cma.engine.pipeline import StepFailedError, StepProgress, run_logged

SCRIPT = (
    "import sys\n"
    "print('2026/12/02 - mmengine - INFO - Iter(train) [  10/1610]  lr: 1e-4  "
    "eta: 0:05:12  time: 0.2  loss: 8.3379  loss_llm: 6.1', flush=True)\n"
    "sys.stderr.write('refcoco val:  10%|#  | 47/677 [00:10<00:12, 4.0it/s]\\r')\n"
    "sys.stderr.write('refcoco val:  20%|## | 94/677 [00:20<00:10, 4.0it/s]\\r')\n"
)


def test_lines_reach_on_line_and_the_log(tmp_path):
    lines = []
    log = tmp_path / "step.log"
    run_logged([sys.executable, "-c", SCRIPT], log, on_line=lines.append)
    assert any("Iter(train)" in line for line in lines)
    assert sum("/677 [" in line for line in lines) == 2  # split at the carriage returns
    text = log.read_text()
    assert "Iter(train)" in text and "94/677" in text


def test_progress_reads_training_and_tqdm_lines(tmp_path):
    bar = StepProgress("train", disable=True)
    bar("2026/12/02 - mmengine - INFO - Iter(train) [  10/1610]  lr: 1e-4  eta: 0:05:12  "
        "time: 0.2  loss: 8.3379  loss_llm: 6.1")
    assert (bar.bar.n, bar.bar.total) == (10, 1610)
    assert bar.bar.postfix == "loss=8.3379, eta=0:05:12"
    bar("refcoco val:  20%|## | 94/677 [00:20<00:10, 4.0it/s]")
    assert (bar.bar.n, bar.bar.total) == (94, 677)
    bar("a line without progress")
    assert bar.bar.n == 94
    bar.close()


def test_a_failed_command_names_its_log(tmp_path):
    with pytest.raises(StepFailedError, match="step.log"):
        run_logged([sys.executable, "-c", "print('boom'); raise SystemExit(3)"],
                   tmp_path / "step.log", on_line=lambda line: None)
