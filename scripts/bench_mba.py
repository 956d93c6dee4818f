"""Benchmark Mask-Biased Attention next to the SAM-2 mask decoder, at Sa2VA-1B dimensions.

Usage:
    python scripts/bench_mba.py [--device cpu|cuda] [--dtype fp32|bf16] [--repeats 10]
                                [--objects 5] [--images 2] [--tokens 32] [--top-k 4]
                                [--json OUT.json]

Both modules run forward + backward on the same inputs in one process, so the printed
ratios compare like with like:
- SAM-2 mask decoder: the `sam_mask_decoder` of the `sam2` package's own Hiera-L model
  (`sam2_hiera_l.yaml`, the one Sa2VA-1B uses; random init, no checkpoint needed), called
  the way Sa2VA calls it: one sparse prompt token per object, no-mask dense embedding,
  high-res features, single-mask output, trainable decoder.
- MBA: `MaskBiasedAttention(dim=256, heads=8, top_k=K)` on the 64x64 SAM-2 embedding of
  every object, N text tokens per object (trainable text), 256x256 first-pass logits.
- "two-pass grounding" = decoder + MBA + decoder (the MBA model's path) vs one decoder
  pass (the Sa2VA baseline path).
Memory: `activation` is the bytes of distinct tensors saved for backward during the
forward pass (exact and device independent); on CUDA the script also reports the peak
allocated memory of forward + backward above the pre-step baseline.
Times are medians over `--repeats` round-robin runs after two warm-up rounds.
"""

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import torch
from sam2.build_sam import build_sam2

from mpr_cma.models import MaskBiasedAttention

EMBED_DIM, GRID, LOW_RES = 256, 64, 256


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--objects", type=int, default=5, help="objects per image")
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=32, help="text tokens per object")
    parser.add_argument("--top-k", type=int, default=4)
    parser.add_argument("--json", help="also write the results to this file")
    return parser.parse_args()


class SavedTensorBytes:
    """Counts the bytes of distinct storages autograd saves for backward."""

    def __init__(self):
        self.storages: dict[int, int] = {}

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        self.storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    def total(self) -> int:
        return sum(self.storages.values())


def _run(step: Callable[[], torch.Tensor], params: list[torch.nn.Parameter]) -> None:
    for p in params:
        p.grad = None
    step().backward()


def measure(steps: dict[str, tuple[Callable[[], torch.Tensor], list[torch.nn.Parameter]]],
            repeats: int, device: torch.device) -> dict[str, dict[str, float]]:
    """Median forward+backward seconds and memory of each step (a callable returning a
    scalar loss). Steps are timed round-robin, so a slow phase of a shared machine hits
    all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(2):
        for step, params in steps.values():
            _run(step, params)
    for _ in range(repeats):
        for name, (step, params) in steps.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            _run(step, params)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times[name].append(time.perf_counter() - start)
    results = {}
    for name, (step, params) in steps.items():
        counter = SavedTensorBytes()
        with torch.autograd.graph.saved_tensors_hooks(counter.pack, lambda t: t):
            loss = step()
        loss.backward()
        result = {"seconds": statistics.median(times[name]),
                  "activation_bytes": counter.total()}
        if device.type == "cuda":
            for p in params:
                p.grad = None
            torch.cuda.synchronize(device)
            base = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            _run(step, params)
            torch.cuda.synchronize(device)
            result["cuda_peak_bytes"] = torch.cuda.max_memory_allocated(device) - base
        results[name] = result
    return results


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    torch.manual_seed(0)
    sam2_model = build_sam2("configs/sam2/sam2_hiera_l.yaml", ckpt_path=None,
                            device=str(device), mode="eval", apply_postprocessing=False)
    decoder = sam2_model.sam_mask_decoder.to(dtype).train().requires_grad_(True)
    prompt_encoder = sam2_model.sam_prompt_encoder  # fp32: its Fourier PE needs it
    del sam2_model.image_encoder, sam2_model.memory_attention, sam2_model.memory_encoder
    mba = MaskBiasedAttention(dim=EMBED_DIM, num_heads=8, top_k=args.top_k)
    mba = mba.to(device, dtype).train()
    with torch.no_grad():
        mba.gamma.fill_(0.1)  # a trained, non-zero gamma (the cost does not depend on it)

    b = args.objects * args.images
    make = lambda *shape: torch.randn(*shape, device=device, dtype=dtype)  # noqa: E731
    visual = make(b, EMBED_DIM, GRID, GRID)
    high_res = [make(b, 32, 4 * GRID, 4 * GRID), make(b, 64, 2 * GRID, 2 * GRID)]
    seg_prompt = make(b, 1, EMBED_DIM).requires_grad_(True)
    text = make(b, args.tokens, EMBED_DIM).requires_grad_(True)
    text_mask = torch.ones(b, args.tokens, dtype=torch.bool, device=device)
    first_pass_logits = make(b, 1, LOW_RES, LOW_RES)
    with torch.no_grad():
        dense = prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        dense = dense.expand(b, -1, GRID, GRID).contiguous().to(dtype)
        image_pe = prompt_encoder.get_dense_pe().to(dtype)

    def decode(features: torch.Tensor) -> torch.Tensor:
        masks, *_ = decoder(image_embeddings=features, image_pe=image_pe,
                            sparse_prompt_embeddings=seg_prompt,
                            dense_prompt_embeddings=dense, multimask_output=False,
                            repeat_image=False, high_res_features=high_res)
        return masks

    def decoder_step() -> torch.Tensor:
        return decode(visual).float().mean()

    def mba_step() -> torch.Tensor:
        return mba(visual, text, first_pass_logits, text_mask).float().mean()

    def two_pass_step() -> torch.Tensor:
        first = decode(visual)
        return decode(mba(visual, text, first, text_mask)).float().mean()

    dec_params = list(decoder.parameters())
    mba_params = list(mba.parameters())
    results = measure({"decoder": (decoder_step, dec_params),
                       "mba": (mba_step, mba_params),
                       "two_pass_grounding": (two_pass_step, dec_params + mba_params)},
                      args.repeats, device)
    params = {"decoder": sum(p.numel() for p in dec_params),
              "mba": sum(p.numel() for p in mba_params)}
    report = {
        "setup": {"device": str(device), "dtype": args.dtype, "batch_objects": b,
                  "grid": f"{GRID}x{GRID}", "channels": EMBED_DIM, "text_tokens": args.tokens,
                  "top_k": args.top_k, "threads": torch.get_num_threads(),
                  "torch": torch.__version__, "machine": platform.processor() or "unknown"},
        "params": params,
        "results": results,
        "ratios": {
            "mba_over_decoder_time": results["mba"]["seconds"] / results["decoder"]["seconds"],
            "mba_over_decoder_activation": (results["mba"]["activation_bytes"]
                                            / results["decoder"]["activation_bytes"]),
            "mba_over_decoder_params": params["mba"] / params["decoder"],
            "two_pass_over_one_pass_time": (results["two_pass_grounding"]["seconds"]
                                            / results["decoder"]["seconds"]),
        },
    }
    if device.type == "cuda":
        report["ratios"]["mba_over_decoder_cuda_peak"] = (
            results["mba"]["cuda_peak_bytes"] / results["decoder"]["cuda_peak_bytes"])
    print_report(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


def print_report(report: dict) -> None:
    setup = report["setup"]
    print(f"device={setup['device']} dtype={setup['dtype']} threads={setup['threads']} "
          f"torch={setup['torch']}")
    print(f"B={setup['batch_objects']} objects, {setup['grid']} x {setup['channels']} ch, "
          f"N={setup['text_tokens']} tokens, K={setup['top_k']}")
    print(f"{'module':<22}{'fwd+bwd ms':>12}{'activations MiB':>18}{'params':>12}")
    for name, res in report["results"].items():
        n_params = report["params"].get(name, report["params"]["decoder"] + report["params"]["mba"])
        line = (f"{name:<22}{1e3 * res['seconds']:>12.1f}"
                f"{res['activation_bytes'] / 2**20:>18.1f}{n_params:>12,}")
        if "cuda_peak_bytes" in res:
            line += f"   cuda peak {res['cuda_peak_bytes'] / 2**20:.1f} MiB"
        print(line)
    for name, value in report["ratios"].items():
        print(f"{name:<34}{value:8.3f}")


if __name__ == "__main__":
    main()
