"""Step time and memory of spatio-temporal MBA against per-frame MBA, in one process.

Usage:
    python projects/st_mba/tools/bench_st_mba.py --size 1b   [--device cpu|cuda] [--repeats 5]
        [--videos 2] [--objects 1] [--frames 5] [--dtype fp32|bf16] [--json OUT.json]
    python projects/st_mba/tools/bench_st_mba.py --size tiny [--repeats 5] [--json OUT.json]

--size 1b: the grounding at Sa2VA-1B dimensions, module level: the SAM-2 Hiera-L mask
    decoder of the `sam2` package (random init, called as Sa2VA calls it) twice with the
    MBA variant between the passes ("two-pass grounding"), on videos x objects x frames
    rows (Sa2VA trains a video sample on 5 frames), 64 x 64 x 256 features, 32 text tokens.
    This is where the variants differ; the MLLM and the image encoder, identical for all
    of them, are left out, so the ratios are upper bounds of the whole training step's.
--size tiny: the whole tiny model's training step (MLLM, SAM-2, losses; forward +
    backward) on a batch of one image (2 objects) and one 3-frame video (1 object), the
    per-frame config configs/tiny/sa2va_mba_tiny.py against the project's tiny leaves,
    every model with the same weights.
Times are medians of round-robin repeats after one warm-up round (a slow phase of a shared
machine hits every variant alike); `activations` are the bytes of the distinct tensors
autograd saves for backward (exact, device independent); on CUDA also the peak memory of
forward + backward above the pre-step allocation.
"""

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from mpr_cma.engine.config import load_config  # noqa: E402
from mpr_cma.models import MaskBiasedAttention  # noqa: E402
from mpr_cma.registry import MODELS  # noqa: E402
from projects.st_mba.st_mba import SpatioTemporalMBA  # noqa: E402

Step = Callable[[], torch.Tensor]
VARIANTS = {"mba": {}, "st_mba": {"track_attention": True},
            "st_mba_prior": {"track_attention": False},
            "st_mba_track": {"track_attention": True, "temporal_mix": 0.0}}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", choices=["1b", "tiny"], required=True)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="1b only")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--videos", type=int, default=2)
    p.add_argument("--objects", type=int, default=1, help="objects per video")
    p.add_argument("--frames", type=int, default=5, help="frames per video sample")
    p.add_argument("--window", type=int, default=3)
    p.add_argument("--json", type=Path)
    return p.parse_args(argv)


def saved_bytes(step: Step) -> int:
    """Bytes of the distinct storages autograd saves during one forward of `step`."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = step()
    loss.backward()
    return sum(storages.values())


def measure(steps: dict[str, Step], repeats: int, device: torch.device) -> dict:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda *_: None)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for step in steps.values():  # warm-up
        step().backward()
    for _ in range(repeats):
        for name, step in steps.items():
            sync(device)
            start = time.perf_counter()
            step().backward()
            sync(device)
            times[name].append(time.perf_counter() - start)
    out = {}
    for name, step in steps.items():
        out[name] = {"seconds": statistics.median(times[name]),
                     "activation_bytes": saved_bytes(step)}
        if device.type == "cuda":
            sync(device)
            base = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            step().backward()
            sync(device)
            out[name]["cuda_peak_bytes"] = torch.cuda.max_memory_allocated(device) - base
    return out


def module(name: str, dim: int, window: int) -> torch.nn.Module:
    if name == "mba":
        m = MaskBiasedAttention(dim=dim, num_heads=8, top_k=4)
    else:
        m = SpatioTemporalMBA(dim=dim, num_heads=8, top_k=4, window=window, **VARIANTS[name])
    with torch.no_grad():  # trained, non-zero scales (the cost does not depend on them)
        m.gamma.fill_(0.1)
        if getattr(m, "track_attn", None) is not None:
            m.track_attn.gamma.fill_(0.1)
    return m


def bench_1b(args) -> dict:
    from sam2.build_sam import build_sam2

    device = torch.device(args.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    torch.manual_seed(0)
    sam = build_sam2("configs/sam2/sam2_hiera_l.yaml", ckpt_path=None, device=str(device),
                     mode="eval", apply_postprocessing=False)
    decoder = sam.sam_mask_decoder.to(dtype).train().requires_grad_(True)
    prompt_encoder = sam.sam_prompt_encoder
    dim, grid, rows = 256, 64, args.videos * args.objects * args.frames
    track = torch.arange(args.videos * args.objects, device=device).repeat_interleave(
        args.frames)
    make = lambda *s: torch.randn(*s, device=device, dtype=dtype)  # noqa: E731
    visual = make(rows, dim, grid, grid)
    high_res = [make(rows, 32, 4 * grid, 4 * grid), make(rows, 64, 2 * grid, 2 * grid)]
    prompt = make(rows, 1, dim).requires_grad_(True)
    text = make(rows, 32, dim).requires_grad_(True)
    text_mask = torch.ones(rows, 32, dtype=torch.bool, device=device)
    with torch.no_grad():
        dense = prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        dense = dense.expand(rows, -1, grid, grid).contiguous().to(dtype)
        image_pe = prompt_encoder.get_dense_pe().to(dtype)

    def decode(features):
        return decoder(image_embeddings=features, image_pe=image_pe,
                       sparse_prompt_embeddings=prompt, dense_prompt_embeddings=dense,
                       multimask_output=False, repeat_image=False,
                       high_res_features=high_res)[0]

    def two_pass(mba) -> Step:
        kwargs = {"track_index": track} if mba.uses_tracks else {}
        return lambda: decode(mba(visual, text, decode(visual), text_mask, **kwargs)).float().mean()

    mods = {name: module(name, dim, args.window).to(device, dtype).train() for name in VARIANTS}
    steps = {name: two_pass(m) for name, m in mods.items()}
    setup = {"rows": rows, "videos": args.videos, "objects": args.objects,
             "frames": args.frames, "grid": f"{grid}x{grid}", "channels": dim,
             "text_tokens": 32, "dtype": args.dtype}
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in mods.items()}
    params["decoder"] = sum(p.numel() for p in decoder.parameters())
    return {"setup": setup, "params": params,
            "results": measure(steps, args.repeats, device)}


def tiny_batch(model) -> dict:
    from mpr_cma.datasets import encode_referring, sa2va_collate, sentence_ids

    g = torch.Generator().manual_seed(0)
    tile = model.mllm.vision_model.image_size
    samples = []
    for frames, expressions in ((1, ["the red circle", "the square on the left"]),
                                (3, ["the circle that stops moving"])):
        enc = encode_referring(model.tokenizer, expressions,
                               frames * model.mllm.num_image_token, frames)
        masks = torch.zeros(len(expressions), frames, 64, 64, dtype=torch.bool)
        for j in range(len(expressions)):
            for t in range(frames):
                masks[j, t, 8 + 6 * j + 4 * t:28 + 6 * j + 4 * t, 10:30] = True
        samples.append({"input_ids": torch.tensor(enc.input_ids),
                        "labels": torch.tensor(enc.labels),
                        "pixel_values": torch.randn(frames, 3, tile, tile, generator=g),
                        "g_pixel_values": torch.randn(frames, 3, 64, 64, generator=g),
                        "masks": masks, "expression_spans": enc.expression_spans,
                        "sentence_ids": sentence_ids(enc.expressions)})
    return sa2va_collate(samples, model.tokenizer.pad_token_id)["data"]


def bench_tiny(args) -> dict:
    configs = {"mba": ROOT / "configs" / "tiny" / "sa2va_mba_tiny.py"}
    configs.update({name: ROOT / "projects" / "st_mba" / "configs" / f"{name}_tiny.py"
                    for name in VARIANTS if name != "mba"})
    models = {}
    for name, path in configs.items():
        torch.manual_seed(0)
        models[name] = MODELS.build(load_config(path, [f"mba.window={args.window}"]
                                                if name != "mba" else None).model).train()
    state = models["st_mba"].state_dict()
    for m in models.values():
        m.load_state_dict(state, strict=False)  # the same weights everywhere
        with torch.no_grad():
            m.grounding.mba.gamma.fill_(0.1)
            if getattr(m.grounding.mba, "track_attn", None) is not None:
                m.grounding.mba.track_attn.gamma.fill_(0.1)
    batch = tiny_batch(models["mba"])

    def step(m) -> Step:
        return lambda: sum(m(batch, mode="loss").values())

    results = measure({name: step(m) for name, m in models.items()}, args.repeats,
                      torch.device("cpu"))
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    return {"setup": {"batch": "1 image x 2 objects + 1 video x 3 frames x 1 object"},
            "params": params, "results": results}


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.manual_seed(0)
    report = bench_1b(args) if args.size == "1b" else bench_tiny(args)
    report["setup"].update(size=args.size, device=args.device, window=args.window,
                           threads=torch.get_num_threads(), torch=torch.__version__,
                           machine=platform.machine(), repeats=args.repeats)
    res = report["results"]
    report["ratios"] = {f"{name}_over_mba_{key}": res[name][key] / res["mba"][key]
                        for name in res if name != "mba"
                        for key in ("seconds", "activation_bytes", "cuda_peak_bytes")
                        if key in res[name]}
    print(json.dumps(report["setup"]))
    print(f"{'variant':<16}{'fwd+bwd ms':>12}{'activations MiB':>18}{'params':>12}")
    for name, r in res.items():
        print(f"{name:<16}{1e3 * r['seconds']:>12.1f}{r['activation_bytes'] / 2**20:>18.2f}"
              f"{report['params'][name]:>12,}")
    for name, value in report["ratios"].items():
        print(f"{name:<44}{value:8.3f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
