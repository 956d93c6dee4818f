"""Convert checkpoints: training checkpoint <-> Sa2VA-1B-layout HF folder.

Usage:
    # DeepSpeed ZeRO dir (any stage, sharded) / work dir / mmengine .pth -> HF folder
    # (LoRA merged into the LLM, MBA/TMC parameters under `mpr_cma.`, tokenizer,
    # mpr_cma_config.json with the build config; safetensors, sharded above --max-shard-size)
    python tools/convert_ckpt.py to-hf work_dirs/mba_1b/iter_5000.pth hf/mba_1b \
        [--config configs/mba_1b.py] [--dtype bf16] [--max-shard-size 5GB] [--fp32-master]

    # HF folder (ours or the Sa2VA-1B release) -> a checkpoint for `load_from` / tools/test.py:
    # a DeepSpeed-style dir (module weights only; default) or an mmengine .pth file
    python tools/convert_ckpt.py from-hf hf/mba_1b work_dirs/init/hf_init.pth \
        [--config configs/mba_1b.py] [--format deepspeed|mmengine]

--config is optional when the input stores it (training checkpoints keep the config text
in meta["cfg"]; folders written by `to-hf` keep the build config). Each step prints what
it found (keys, dtypes, parameter counts). An existing output is never replaced without
--overwrite. LoRA A/B are not in an HF folder: `from-hf` loads the merged weights into
the base layers with B = 0, so the model computes exactly what the folder computes.
"""

import argparse
import shutil
import sys
from pathlib import Path

import deepspeed
import torch
from mmengine.config import Config

from mpr_cma.checkpoint import (
    MODEL_STATES,
    build_and_load,
    is_hf_folder,
    load_model_config,
    read_checkpoint,
    read_safetensors_folder,
    resolve_checkpoint,
    stored_model_config,
    summarize_state,
)
from mpr_cma.models.checkpoint import save_sa2va_hf

DTYPES = {"keep": None, "bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    sub = parser.add_subparsers(dest="command", required=True)
    to_hf = sub.add_parser("to-hf", help="training checkpoint -> HF folder")
    to_hf.add_argument("checkpoint", help="DeepSpeed dir, work dir, or .pth file")
    to_hf.add_argument("out", help="output HF folder")
    to_hf.add_argument("--dtype", choices=list(DTYPES), default="keep",
                       help="cast floating-point weights (the Sa2VA release is bf16)")
    to_hf.add_argument("--max-shard-size", default="5GB", help="e.g. 5GB, 500MB")
    to_hf.add_argument("--fp32-master", action="store_true",
                       help="rebuild fp32 master weights from the ZeRO optimizer shards")
    from_hf = sub.add_parser("from-hf", help="HF folder -> training checkpoint")
    from_hf.add_argument("hf_dir", help="HF folder (save_sa2va_hf output or a Sa2VA release)")
    from_hf.add_argument("out", help="output DeepSpeed dir (e.g. init.pth) or .pth file")
    from_hf.add_argument("--format", choices=["deepspeed", "mmengine"], default="deepspeed")
    for p in (to_hf, from_hf):
        p.add_argument("--config", help="model config (default: the one the input stores)")
        p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    return parser.parse_args(argv)


def print_state(title: str, state: dict[str, torch.Tensor]) -> None:
    info = summarize_state(state)
    dtypes = ", ".join(f"{d}: {n}" for d, n in sorted(info["dtypes"].items()))
    print(f"{title}: {info['keys']} tensors, {info['numel']:,} parameters ({dtypes})")
    for prefix, numel in info["prefixes"].items():
        print(f"    {prefix:<40s} {numel:>14,}")


def check_output(out: Path, overwrite: bool) -> None:
    """Refuse an existing output (a non-empty folder or a file) unless --overwrite."""
    exists = out.is_file() or (out.is_dir() and any(out.iterdir()))
    if exists and not overwrite:
        sys.exit(f"error: {out} exists; pass --overwrite to replace it")
    if exists:
        shutil.rmtree(out) if out.is_dir() else out.unlink()


def to_hf(args: argparse.Namespace) -> None:
    out = Path(args.out)
    check_output(out, args.overwrite)
    info = resolve_checkpoint(args.checkpoint)
    if info.kind == "hf":
        sys.exit(f"error: {info.path} is an HF folder already (to-hf reads training "
                 "checkpoints)")
    found = read_checkpoint(info, fp32_master=args.fp32_master)
    print(f"read {found.kind} checkpoint {found.path} (ZeRO stage {found.zero_stage}, "
          f"{found.world_size} ranks, {found.weights} weights, iter {found.meta.get('iter')})")
    print_state("checkpoint", found.state_dict)
    cfg = load_model_config(args.config, found.meta)
    print(f"config: {args.config or 'stored in the checkpoint'}")
    # The one loader: frozen parameters the checkpoint leaves out (DeepSpeed's
    # exclude_frozen_parameters) come from the config's pretrained weights; any other
    # key mismatch is an error.
    model, loaded = build_and_load(cfg.model, info, found=found)
    if loaded.from_pretrained:
        filled = loaded.from_pretrained
        print(f"{len(filled)} frozen parameters not in the checkpoint were taken from the "
              f"config's pretrained weights: {filled[:8]}{' ...' if len(filled) > 8 else ''}")
    save_sa2va_hf(model, out, max_shard_size=args.max_shard_size, dtype=DTYPES[args.dtype],
                  model_config=cfg.model.to_dict())
    print_state(f"wrote {out}", read_safetensors_folder(out))
    print(f"files: {sorted(p.name for p in out.iterdir())}")


def module_checkpoint(state: dict[str, torch.Tensor], meta: dict) -> dict:
    """A DeepSpeed model-states dict with what `engine.load_checkpoint` reads (no optimizer:
    mmengine's `load_from` loads with load_optimizer_states=False)."""
    return {"module": state, "buffer_names": [], "optimizer": None, "lr_scheduler": None,
            "param_shapes": [], "frozen_param_shapes": None, "shared_params": {},
            "frozen_param_fragments": None, "data_sampler": None, "random_ltd": None,
            "skipped_steps": 0, "global_steps": 0, "global_samples": 0, "dp_world_size": 1,
            "mp_world_size": 1, "ds_version": deepspeed.__version__, "meta": meta}


def from_hf(args: argparse.Namespace) -> None:
    out, folder = Path(args.out), Path(args.hf_dir)
    if not is_hf_folder(folder):
        sys.exit(f"error: {folder} is not an HF folder (no model.safetensors or index)")
    check_output(out, args.overwrite)
    print_state(f"read {folder}", read_safetensors_folder(folder))
    stored = stored_model_config(folder)
    if args.config is None and stored is None:
        sys.exit(f"error: {folder} stores no build config; pass --config")
    cfg = load_model_config(args.config) if args.config else Config(dict(model=stored))
    # Our folders hold their tokenizer (with Sa2VA's tokens); a release keeps the config's.
    tokenizer = folder if args.config is None else None
    model, loaded = build_and_load(cfg.model, folder, tokenizer=tokenizer)
    report = loaded.hf_report
    print(f"loaded {len(report.loaded)} tensors; new (init, LoRA A/B with B = 0): "
          f"{len(report.new_initialised)}")
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if tokenizer is not None:
        cfg.model.tokenizer = str(folder.resolve())
    meta = {"source": str(folder), "cfg": cfg.pretty_text}
    if args.format == "deepspeed":
        out.mkdir(parents=True, exist_ok=True)
        torch.save(module_checkpoint(state, meta), out / MODEL_STATES)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": state, "meta": meta}, out)
    print_state(f"wrote {out} ({args.format})", state)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    to_hf(args) if args.command == "to-hf" else from_hf(args)


if __name__ == "__main__":
    main()
