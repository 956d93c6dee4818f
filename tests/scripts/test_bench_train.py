"""scripts/bench_train.py runs and reports both configs (a smoke test, no timing asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def test_bench_train_reports_baseline_and_mba(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "scripts/bench_train.py", "configs/tiny/sa2va_mba_tiny.py",
         "--baseline", "configs/tiny/sa2va_baseline_tiny.py", "--repeats", "1",
         "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"baseline", "model"}
    base, model = report["results"]["baseline"], report["results"]["model"]
    assert model["trainable"] > base["trainable"]  # MBA, TMC heads, text_token_fcs
    assert all(r["step_seconds"] > 0 and r["activation_bytes"] > 0 for r in (base, model))
    assert set(report["ratios"]) == {"model"}
    assert set(report["ratios"]["model"]) >= {"step_seconds", "activation_bytes", "state_bytes"}
    # the batch is built at the models' own sizes (tiny: 56 px InternViT tiles, 64 px SAM-2)
    assert (report["tile_px"], report["sam2_px"]) == (56, 64)


def test_share_weights_makes_the_baseline_use_the_model_tensors(tmp_path):
    from mpr_cma.registry import MODELS  # noqa: F401  (registers the models)
    from scripts.bench_train import build, share_parameters

    model = build("configs/tiny/sa2va_mba_tiny.py", "cpu")
    baseline = build("configs/tiny/sa2va_baseline_tiny.py", "cpu")
    own = dict(model.named_parameters())
    common = [n for n, p in baseline.named_parameters() if n in own and own[n].shape == p.shape]
    assert common and share_parameters(baseline, model) == len(common)
    shared = dict(baseline.named_parameters())
    assert all(shared[n] is own[n] for n in common)
    assert "mllm.mlp1.1.weight" in common and not any("mba" in n for n in common)


def test_bench_train_share_weights_runs(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "scripts/bench_train.py", "configs/tiny/sa2va_mba_tiny.py",
         "--baseline", "configs/tiny/sa2va_baseline_tiny.py", "--repeats", "1",
         "--warmup", "1", "--share-weights", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["shared_weights"] is True and report["batch"]["warmup"] == 1
    assert all(len(r) for r in report["results"].values())


def test_activation_bytes_leave_out_parameter_storages():
    """A linear layer saves its weight for the input gradient: state, not an activation."""
    from scripts.bench_train import saved_activation_bytes

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(256, 256, bias=False)

        def forward(self, batch, mode="loss"):
            return {"loss": self.lin(batch["x"]).square().sum()}

    net = Net()
    x = torch.randn(4, 256, requires_grad=True)
    got = saved_activation_bytes(net, {"x": x})
    # saved: x (for the weight gradient) and the output (for square); not the 256 KiB weight
    assert got == 2 * 4 * 256 * 4


def test_variant_arm_runs_with_its_own_options(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "scripts/bench_train.py", "configs/tiny/sa2va_mba_tiny.py",
         "--baseline", "configs/tiny/sa2va_baseline_tiny.py", "--repeats", "1",
         "--warmup", "0", "--share-weights", "--autocast", "bf16",
         "--variant", "detached", "configs/tiny/sa2va_mba_tiny.py",
         "model.grounding.detach_prior=True", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert list(report["results"]) == ["baseline", "model", "detached"]
    assert report["results"]["detached"]["options"] == ["model.grounding.detach_prior=True"]
    assert set(report["ratios"]) == {"model", "detached"}
    # the first decoder pass runs without autograd when its prior is detached
    assert (report["results"]["detached"]["activation_bytes"]
            < report["results"]["model"]["activation_bytes"])
