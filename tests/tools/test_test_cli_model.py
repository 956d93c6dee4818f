"""tools/test.py inference with the tiny model on fixture data in the real layouts.

RefCOCO (tests/datasets/_train_data.py: val = one sentence on a 20x16 image) and MeViS
valid_u (videos of 16x20 frames, 3 expressions) / valid (no ground truth) fixtures; the
tiny model is saved as an HF folder (save_sa2va_hf), a plain torch state dict and a
DeepSpeed checkpoint folder of a training work dir. Most runs call main() in-process (the
model build costs ~1 s); one subprocess run and one 2-process torchrun run cover the CLI
and the sharded path.
"""

import hashlib
import json
import math
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mpr_cma.checkpoint import (
    CheckpointKeyError,
    CorruptCheckpointError,
    load_checkpoint,
    resolve_checkpoint,
)
from mpr_cma.datasets import write_refvos_split
from mpr_cma.engine.inference_runner import merge_shards, shard_indices
from mpr_cma.models.checkpoint import save_sa2va_hf
from tests.datasets._train_data import write_refcoco_root, write_refvos_root
from tests.models.test_sa2va import build
from tests.tools.test_test_cli import REPO, RESULT_FIELDS, TEST_PY, test_tool  # noqa: F401

CONFIG = str(REPO / "configs" / "tiny" / "sa2va_mba_tiny.py")
ANSWER = ["--answer", "It is [SEG]."]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("model_cli")
    data = root / "data"
    write_refcoco_root(data)
    write_refvos_root(data / "mevis" / "valid_u")
    write_refvos_split(data / "mevis" / "valid", {"v9": {
        "size": (12, 18), "frames": ["00000", "00005"],
        "images": np.full((2, 12, 18, 3), 90, np.uint8),
        "expressions": {"0": {"exp": "the dog", "anno_id": ["7"]}}}}, with_masks=False)
    model = build("sa2va_mba_tiny.py", seed=1)
    state = model.state_dict()
    torch.save(state, root / "plain.pth")
    save_sa2va_hf(model, root / "hf")
    work = root / "train_work_dir"
    (work / "iter_3.pth").mkdir(parents=True)
    torch.save({"module": state, "iteration": 3},
               work / "iter_3.pth" / "mp_rank_00_model_states.pt")
    (work / "last_checkpoint").write_text(str(work / "iter_3.pth"))
    return {"root": root, "data": data, "model": model, "state": state, "work": work}


def cli(test_tool, env, tmp_path, *args: str) -> tuple[int, dict | None]:  # noqa: F811
    code = test_tool.main([CONFIG, "--data-root", str(env["data"]), "--work-dir",
                           str(tmp_path), "--no-progress", *args])
    out = tmp_path / "results.json"
    return code, json.loads(out.read_text()) if out.is_file() else None


def check_fields(results: dict, checkpoint: Path, sha: str, kind: str) -> None:
    assert set(results) >= RESULT_FIELDS
    assert results["config"] == CONFIG and not results["random_init"]
    assert results["checkpoint"] == str(checkpoint) and results["checkpoint_sha256"] == sha
    assert results["checkpoint_kind"] == kind
    assert {"data", "model", "post_processing"} <= set(results["timings"])


def test_refcoco_cli_with_hf_folder(env, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(TEST_PY), CONFIG, "--checkpoint", str(env["root"] / "hf"),
         "--dataset", "refcoco", "--split", "val", "--data-root", str(env["data"]),
         "--work-dir", str(tmp_path), "--save-masks", *ANSWER],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    check_fields(results, env["root"] / "hf", sha256(env["root"] / "hf" / "model.safetensors"),
                 "hf")
    metrics = results["metrics"]
    assert math.isfinite(metrics["cIoU"]) and math.isfinite(metrics["gIoU"])
    assert metrics["num_items"] == 1 and metrics["no_seg"] == 0  # teacher-forced [SEG]
    assert set(results["per_item"]) == {"4_4"}
    assert "| RefCOCO val/testA/testB |" in proc.stdout and "cIoU" in proc.stdout
    assert "stage model" in (tmp_path / "test.log").read_text()
    with Image.open(tmp_path / "masks" / "4_4.png") as png:
        assert png.size == (16, 20)  # (W, H) of image 9


def test_mevis_u_with_plain_state_dict_saves_masks(test_tool, env, tmp_path):  # noqa: F811
    ckpt = env["root"] / "plain.pth"
    code, results = cli(test_tool, env, tmp_path, "--checkpoint", str(ckpt), "--dataset",
                        "mevis_u", "--save-masks", *ANSWER)
    assert code == 0
    check_fields(results, ckpt, sha256(ckpt), "pth")
    assert results["split"] == "valid_u" and results["metrics"]["num_expressions"] == 3
    assert all(math.isfinite(results["metrics"][k]) for k in ("J", "F", "J&F"))
    assert set(results["per_item"]) == {"v1/0", "v1/1", "v2/0"}
    assert results["metrics"]["no_seg"] == 0 and results["metrics"]["missing_frames"] == 0
    pngs = sorted(p.relative_to(tmp_path / "masks").as_posix()
                  for p in (tmp_path / "masks").rglob("*.png"))
    assert len(pngs) == 4 + 4 + 3 and "v2/0/00002.png" in pngs
    for png in (tmp_path / "masks").rglob("*.png"):
        with Image.open(png) as img:
            assert img.size == (20, 16) and set(np.unique(np.asarray(img))) <= {0, 255}


def test_mevis_valid_writes_complete_submission(test_tool, env, tmp_path):  # noqa: F811
    code, results = cli(test_tool, env, tmp_path, "--checkpoint", str(env["work"]),
                        "--dataset", "mevis", "--max-new-tokens", "2")
    assert code == 0
    ckpt = env["work"] / "iter_3.pth"  # the work dir resolves to its latest checkpoint
    check_fields(results, ckpt, sha256(ckpt / "mp_rank_00_model_states.pt"), "deepspeed")
    assert results["metrics"]["complete"] and results["metrics"]["num_frames"] == 2
    with zipfile.ZipFile(tmp_path / "submission.zip") as zf:
        assert sorted(zf.namelist()) == ["v9/0/00000.png", "v9/0/00005.png"]


def test_random_init_must_be_explicit(test_tool, env, tmp_path):  # noqa: F811
    for args in (["--dataset", "refcoco"], ["--checkpoint", "none", "--dataset", "refcoco"]):
        with pytest.raises(SystemExit) as exc:
            test_tool.parse_args([CONFIG, *args])
        assert exc.value.code == 2
    code, results = cli(test_tool, env, tmp_path, "--random-init", "--dataset", "refcoco",
                        "--max-new-tokens", "2")
    assert code == 0 and results["random_init"] and results["checkpoint"] is None
    assert results["init_seed"] == 0


def test_random_init_is_the_same_model_on_every_build():
    # An unseeded init gave every run (and every rank of one run) another untrained model.
    from mpr_cma.engine.evaluate import build_eval_model

    torch.manual_seed(123)
    first, _ = build_eval_model(CONFIG, None)
    torch.manual_seed(456)
    second, _ = build_eval_model(CONFIG, None)
    other, _ = build_eval_model(CONFIG, None, init_seed=1)
    a, b, c = first.state_dict(), second.state_dict(), other.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_bad_checkpoints_are_named(test_tool, env, tmp_path):  # noqa: F811
    missing = tmp_path / "nope.pth"
    code, _ = cli(test_tool, env, tmp_path, "--checkpoint", str(missing), "--dataset", "refcoco")
    assert code == 1 and f"checkpoint not found: {missing}" in (tmp_path / "test.log").read_text()
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(CorruptCheckpointError, match="broken.pth"):
        load_checkpoint(env["model"], broken)
    state = dict(env["state"])
    state.pop(next(iter(state)))
    state["extra.weight"] = torch.zeros(1)
    torch.save({"state_dict": state}, tmp_path / "keys.pth")
    with pytest.raises(CheckpointKeyError, match=r"keys.pth.*missing keys \(1\).*unexpected keys "
                                                 r"\(1\): extra.weight"):
        load_checkpoint(env["model"], tmp_path / "keys.pth")
    with pytest.raises(CorruptCheckpointError, match="not a checkpoint folder"):
        resolve_checkpoint(env["data"])


def test_all_skips_missing_data(test_tool, env, tmp_path):  # noqa: F811
    code = test_tool.main([CONFIG, "--all", "--checkpoint", str(env["root"] / "plain.pth"),
                           "--data-root", str(env["data"]), "--work-dir", str(tmp_path),
                           "--no-progress", "--max-new-tokens", "2"])
    assert code == 0
    combined = json.loads((tmp_path / "results_all.json").read_text())
    assert [(r["dataset"], r["split"]) for r in combined["results"]] == [
        ("refcoco", "val"), ("mevis_u", "valid_u")]
    assert (tmp_path / "refcoco_val" / "results.json").is_file()
    log = (tmp_path / "test.log").read_text()
    assert "skipping refcoco testA" in log and "skipping davis17 valid" in log


@pytest.mark.parametrize("total,world", [(0, 2), (1, 2), (7, 2), (10, 3), (5, 1)])
def test_shards_cover_every_item_once_and_merge_back(total, world):
    items = [f"item{i}" for i in range(total)]
    shards = [[items[i] for i in shard_indices(total, r, world)] for r in range(world)]
    assert sorted(sum(shards, [])) == sorted(items)
    assert merge_shards(shards) == items
    with pytest.raises(ValueError):
        merge_shards([shards[0] + ["x", "y"], *shards[1:]] if world > 1 else [["x"], ["y", "z"]])


def test_two_process_sharded_run_matches_one_process(test_tool, env, tmp_path):  # noqa: F811
    """tools/dist_test.sh with 2 CPU processes (gloo): same scores as the 1-process run."""
    args = ["--checkpoint", str(env["root"] / "plain.pth"), "--dataset", "mevis_u",
            "--data-root", str(env["data"]), "--no-progress", *ANSWER]
    code, single = cli(test_tool, env, tmp_path / "one", *args[:4], *ANSWER)
    assert code == 0
    proc = subprocess.run(
        ["bash", str(REPO / "tools" / "dist_test.sh"), CONFIG, "2", *args, "--work-dir",
         str(tmp_path / "two")], cwd=REPO, capture_output=True, text=True, timeout=180,
        env={**os.environ, "PORT": str(29600 + os.getpid() % 300), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    sharded = json.loads((tmp_path / "two" / "results.json").read_text())
    assert sharded["world_size"] == 2 and len(sharded["timings"]["per_rank"]) == 2
    assert list(sharded["per_item"]) == list(single["per_item"])
    for key in ("J", "F", "J&F"):
        assert sharded["metrics"][key] == pytest.approx(single["metrics"][key], abs=1e-6)
