"""scripts/bench_memory_parts.py on the tiny configs: the parts add up to the whole step's
saved bytes, checkpointing empties the LLM layers' part, and the two-pass grounding saves
more per row than the baseline's single pass."""

import json

import torch

from scripts.bench_memory_parts import main, measure, set_llm_checkpointing
from scripts.bench_train import build, make_batch, saved_activation_bytes

MBA, BASELINE = "configs/tiny/sa2va_mba_tiny.py", "configs/tiny/sa2va_baseline_tiny.py"


def test_parts_and_units(tmp_path, capsys):
    out = tmp_path / "parts.json"
    assert main([MBA, "--json", str(out)]) == 0
    assert "grounding rows" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert (report["tile_px"], report["sam2_px"]) == (56, 64)
    assert report["rows"] == 3 + 2   # 3 objects on the image, 1 object x 2 video frames
    on, off = report["runs"]["checkpointing_on"], report["runs"]["checkpointing_off"]
    for run in (on, off):
        assert sum(run["parts"].values()) == run["total"]
        assert run["parts"]["vision"] == 0   # frozen InternViT
        assert run["parts"]["llm_logits"] > 0 and run["parts"]["decoder_mba"] > 0
        assert run["parts"]["weight_casts"] > 0   # bf16 autocast over fp32 weights
        # the layer inputs: tokens x layers x hidden, fp32 residual stream under autocast
        assert run["llm_layer_inputs"] == report["tokens"] * report["layers"] * report[
            "hidden"] * 4
    assert on["parts"]["llm_layers"] == 0 < off["parts"]["llm_layers"]


def test_total_equals_bench_train_and_two_passes_cost_more():
    per_row = {}
    for config in (MBA, BASELINE):
        model = build(config, torch.device("cpu"))
        batch = make_batch(model, 1, 3, 2, torch.device("cpu"))
        set_llm_checkpointing(model, False)
        # the same random draws (dropout, sampled points) in both forwards: tensors of
        # data-dependent size (e.g. boundary pixels) then have the same size
        torch.manual_seed(0)
        run = measure(model, batch, None)
        torch.manual_seed(0)
        assert run["total"] == saved_activation_bytes(model, batch)
        assert run["parts"]["weight_casts"] == 0   # no autocast: no bf16 weight copies
        per_row[config] = run["parts"]["decoder_mba"]
    assert per_row[MBA] > 1.5 * per_row[BASELINE]
