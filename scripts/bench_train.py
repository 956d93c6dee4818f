"""Training-step time and memory of two model configs side by side (baseline vs MBA).

Usage:
    python scripts/bench_train.py CONFIG [--baseline BASELINE_CONFIG] [--repeats 10]
        [--device cpu|cuda] [--tiles 1] [--objects 3] [--frames 2] [--json OUT.json]
        [--warmup 2] [--share-weights] [--autocast bf16] [--cfg-options K=V ...]
        [--variant NAME CONFIG [K=V ...]]

e.g. python scripts/bench_train.py configs/tiny/sa2va_mba_tiny.py \\
         --baseline configs/tiny/sa2va_baseline_tiny.py
     python scripts/bench_train.py configs/mba_1b.py \\
         --baseline configs/ablations/sa2va_1b_baseline.py --share-weights \\
         --cfg-options pretrained_root=DIR --autocast bf16 \\
         --variant prior_detached configs/mba_1b.py model.grounding.detach_prior=True

Each config's model is built (weights paths are ignored: random init; `--cfg-options`,
applied to every config, is for e.g. `pretrained_root=DIR` whose tokenizer the 1B
configs read) and trained on the same synthetic batch of 2 samples: an image of `--tiles`
MLLM tiles with `--objects` referring expressions and a video of `--frames` frames (one
tile each) with one expression, encoded and collated by the real data pipeline
(`encode_referring`, `sa2va_collate`), at the model's own sizes (the InternViT tile and
SAM-2's input side, printed: 448 and 1024 px for the 1B configs). One step = forward, all
loss terms, backward and an AdamW update. Steps of the two models alternate (round-robin),
so a slow phase of a shared machine hits both alike; times are medians after 2 warm-up
steps. Memory: on CUDA the peak allocated memory of a step above the pre-step baseline;
on CPU the peak RSS of a step above the RSS before it (sampled every 10 ms, median over
the timed steps; freed memory the allocator keeps is not seen again, so it is a lower
bound); everywhere the bytes of distinct tensors saved for backward (activations; storages
of parameters, which forward saves for the input gradients, are counted in state_bytes,
not here) and the bytes of parameters, gradients and Adam states of the trainable
parameters. `--autocast bf16` runs forward under torch.autocast in bf16 (the CPU training
recipe's DeepSpeed `torch_autocast`; the GPU recipe casts the weights to bf16 instead).

--variant NAME CONFIG [K=V ...] (repeatable) adds an arm: CONFIG with these
`--cfg-options` on top, timed in the same round-robin and compared to the baseline, e.g.
a knob of the model (`model.grounding.detach_prior=True`).

--share-weights (for the 1B model on a machine that cannot hold two copies): the
baseline's parameters that the model also has (same name and shape) are the model's own
tensors, and one AdamW holds the union of the trainable ones. Each arm still runs its own
config's modules and losses; only the storage is shared, so both see the same weights
(updated by both arms' steps). Its state_bytes then count each arm's own parameters as if
alone, as without the flag.
"""

import argparse
import contextlib
import json
import statistics
import sys
import time

import torch

from mpr_cma.datasets import encode_referring, sa2va_collate, sentence_ids
from mpr_cma.engine.config import load_config
from mpr_cma.engine.peak_rss import PeakRSS
from mpr_cma.registry import MODELS

EXPRESSIONS = ["the red circle", "the square left of the blue triangle",
               "the second square from the left", "the bigger green circle"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config")
    parser.add_argument("--baseline", help="second config, e.g. the same model without MBA")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiles", type=int, default=1, help="MLLM tiles of the image")
    parser.add_argument("--objects", type=int, default=3, help="expressions on the image")
    parser.add_argument("--frames", type=int, default=2, help="frames of the video")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model")
    parser.add_argument("--share-weights", action="store_true",
                        help="the other arms use the model's tensors (module docstring)")
    parser.add_argument("--autocast", choices=("none", "bf16"), default="none",
                        help="forward under torch.autocast in this dtype")
    parser.add_argument("--cfg-options", nargs="+", default=[], metavar="K=V",
                        help="overrides for every config, e.g. pretrained_root=DIR")
    parser.add_argument("--variant", nargs="+", action="append", default=[],
                        metavar="NAME CONFIG [K=V", help="an extra arm (module docstring)")
    args = parser.parse_args()
    for variant in args.variant:
        if len(variant) < 2 or variant[0] in ("baseline", "model"):
            parser.error(f"--variant NAME CONFIG [K=V ...], NAME not baseline/model: {variant}")
    return args


def build(config: str, device: torch.device, cfg_options=()):
    cfg = load_config(config, list(cfg_options)).model
    cfg.mllm_pretrained = None
    cfg.grounding.ckpt_path = None
    torch.manual_seed(0)
    return MODELS.build(cfg).to(device).train()


def make_batch(model, tiles: int, objects: int, frames: int, device: torch.device) -> dict:
    """An image sample and a video sample in the model's sizes, encoded and collated by the
    real data pipeline (see the module docstring)."""
    g = torch.Generator().manual_seed(0)
    tile, size = model.mllm.vision_model.image_size, model.grounding.image_size
    samples = []
    for n_tiles, n_frames, exprs in ((tiles, 1, EXPRESSIONS[:objects]),
                                     (frames, frames, EXPRESSIONS[:1])):
        enc = encode_referring(model.tokenizer, exprs, n_tiles * model.mllm.num_image_token,
                               n_frames)
        m = torch.zeros(len(exprs), n_frames, size, size, dtype=torch.bool)
        for j in range(len(exprs)):
            m[j, :, size // 8 * (j + 1): size // 8 * (j + 3), size // 4: size // 2] = True
        samples.append({"input_ids": torch.tensor(enc.input_ids),
                        "labels": torch.tensor(enc.labels),
                        "pixel_values": torch.randn(n_tiles, 3, tile, tile, generator=g),
                        "g_pixel_values": torch.randn(n_frames, 3, size, size, generator=g),
                        "masks": m, "expression_spans": enc.expression_spans,
                        "sentence_ids": sentence_ids(enc.expressions)})
    batch = sa2va_collate(samples, model.tokenizer.pad_token_id)["data"]
    return {k: (v.to(device) if torch.is_tensor(v) else
                [x.to(device) if torch.is_tensor(x) else x for x in v] if k in
                ("g_pixel_values", "masks", "sentence_ids") else v)
            for k, v in batch.items() if k not in ("meta", "sentences")}


def saved_activation_bytes(model, batch: dict, autocast=None) -> int:
    """Bytes of the distinct storages saved for backward by one forward, parameters'
    own storages excluded (they are state, not activations). Tensors saved inside a
    gradient-checkpointed region are not stored, so not counted."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            storages[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast_context(
            autocast, next(model.parameters()).device):
        loss = sum(model(batch, mode="loss").values())
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(storages.values())


def autocast_context(dtype, device: torch.device):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def share_parameters(target: torch.nn.Module, source: torch.nn.Module) -> int:
    """Make `target`'s parameters that `source` has (same name and shape) `source`'s
    tensors; returns how many were shared."""
    own = dict(source.named_parameters())
    count = 0
    for name, param in list(target.named_parameters()):
        other = own.get(name)
        if other is None or other.shape != param.shape or other is param:
            continue
        module_name, _, leaf = name.rpartition(".")
        module = target.get_submodule(module_name) if module_name else target
        setattr(module, leaf, other)
        count += 1
    return count


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    autocast = {"none": None, "bf16": torch.bfloat16}[args.autocast]
    # name -> (config, extra cfg-options); "model" first so that with --share-weights the
    # others share its tensors as soon as each is built (never two 1B copies at once).
    arms = {"model": (args.config, [])}
    if args.baseline:
        arms["baseline"] = (args.baseline, [])
    for name, config, *options in args.variant:
        arms[name] = (config, options)
    shared = args.share_weights and len(arms) > 1
    runs = {}
    for name, (config, options) in arms.items():
        model = build(config, device, [*args.cfg_options, *options])
        if shared and name != "model":
            share_parameters(model, runs["model"]["model"])
        trainable = [p for p in model.parameters() if p.requires_grad]
        runs[name] = {"config": config, "options": options, "model": model,
                      "batch": make_batch(model, args.tiles, args.objects, args.frames, device),
                      "times": [], "rss": [], "trainable": sum(p.numel() for p in trainable),
                      "params": sum(p.numel() for p in model.parameters())}
    if shared:
        union = {id(p): p for run in runs.values() for p in run["model"].parameters()
                 if p.requires_grad}
        optimizer = torch.optim.AdamW(list(union.values()), lr=1e-5)
        for run in runs.values():
            run["optimizer"] = optimizer
    else:
        for run in runs.values():
            run["optimizer"] = torch.optim.AdamW(
                [p for p in run["model"].parameters() if p.requires_grad], lr=1e-5)
    # the round-robin order: baseline, model, variants
    order = [n for n in ("baseline", "model") if n in runs] + [n for n in runs
                                                              if n not in ("baseline", "model")]
    runs = {name: runs[name] for name in order}

    def step(run: dict) -> None:
        run["optimizer"].zero_grad(set_to_none=True)
        with autocast_context(autocast, device):
            losses = run["model"](run["batch"], mode="loss")
        sum(losses.values()).backward()
        run["optimizer"].step()

    for i in range(args.warmup + args.repeats):
        for name, run in runs.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            with PeakRSS() as rss:
                start = time.perf_counter()
                step(run)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                seconds = time.perf_counter() - start
            if i >= args.warmup:
                run["times"].append(seconds)
                run["rss"].append(rss.peak - rss.start)
            # a 1B step on CPU takes minutes: show where the run is (stderr, the report is stdout)
            kind = "warm-up" if i < args.warmup else "timed"
            print(f"step {i + 1}/{args.warmup + args.repeats} ({kind}) {name}: {seconds:.1f} s",
                  file=sys.stderr, flush=True)
    tile = next(iter(runs.values()))["model"].mllm.vision_model.image_size
    size = next(iter(runs.values()))["model"].grounding.image_size
    report = {"device": str(device), "threads": torch.get_num_threads(),
              "shared_weights": shared, "autocast": args.autocast,
              "tile_px": tile, "sam2_px": size,
              "torch": torch.__version__, "batch": vars(args), "results": {}}
    for name, run in runs.items():
        result = {"config": run["config"], "options": run["options"],
                  "step_seconds": statistics.median(run["times"]),
                  "step_seconds_all": run["times"],
                  "step_rss_bytes": statistics.median(run["rss"]),
                  "params": run["params"], "trainable": run["trainable"],
                  # bf16/fp32 weights + grads + Adam m, v of what trains, in the run's dtype
                  "state_bytes": sum(p.numel() * p.element_size() for p in
                                     run["model"].parameters())
                  + 3 * run["trainable"] * 4,
                  "activation_bytes": saved_activation_bytes(run["model"], run["batch"],
                                                             autocast)}
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            base = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            step(run)
            torch.cuda.synchronize(device)
            result["cuda_peak_bytes"] = torch.cuda.max_memory_allocated(device) - base
        report["results"][name] = result
    keys = ("step_seconds", "activation_bytes", "step_rss_bytes", "state_bytes",
            "cuda_peak_bytes")
    if "baseline" in runs:
        base = report["results"]["baseline"]
        report["ratios"] = {name: {key: r[key] / base[key] for key in keys
                                   if key in r and base[key]}
                            for name, r in report["results"].items() if name != "baseline"}
    print(f"device={report['device']} threads={report['threads']} torch={report['torch']} "
          f"autocast={args.autocast} tile={tile}px sam2={size}px tiles={args.tiles} "
          f"objects={args.objects} frames={args.frames} shared_weights={shared}")
    print(f"{'':16}{'step ms':>10}{'step RSS MiB':>14}{'activ. MiB':>12}{'state MiB':>11}"
          f"{'trainable':>13}")
    for name, r in report["results"].items():
        print(f"{name:16}{1e3 * r['step_seconds']:>10.1f}{r['step_rss_bytes'] / 2**20:>14.1f}"
              f"{r['activation_bytes'] / 2**20:>12.1f}{r['state_bytes'] / 2**20:>11.1f}"
              f"{r['trainable']:>13,}  {r['config']} {' '.join(r['options'])}".rstrip())
    for name, ratios in report.get("ratios", {}).items():
        for key, value in ratios.items():
            print(f"{name} / baseline {key}: {value:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
