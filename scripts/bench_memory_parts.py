"""Saved-for-backward memory of a training step, per part of the model (issue 16 item 3).

Usage:
    python scripts/bench_memory_parts.py CONFIG [--cfg-options K=V ...] [--tiles 1]
        [--objects 3] [--frames 2] [--autocast bf16|none] [--checkpointing both|on|off]
        [--json OUT.json]

e.g. python scripts/bench_memory_parts.py configs/mba_1b.py --cfg-options pretrained_root=DIR

The config's model is built at random init (weight paths ignored, as scripts/bench_train.py;
`pretrained_root=DIR` is only read for the tokenizer) and runs forward on the same synthetic
batch as bench_train.py (an image of --tiles tiles with --objects expressions and a video of
--frames frames with one, at the model's sizes: 448 px tiles and 1024 px SAM-2 for the 1B
configs). Every tensor autograd saves for backward is attributed to the innermost tagged
module running when it is saved, and each distinct storage is counted once (parameters'
own storages excluded: they are state):

- vision: InternViT (frozen: 0); projector: the MLP from ViT to LLM (trained, as Sa2VA)
- llm_layers: the Qwen2 decoder layers; with gradient checkpointing their saved tensors are
  not stored (recomputed in backward), and what checkpointing keeps instead, each layer's
  input hidden states, is reported as llm_layer_inputs (from the layers' inputs, not hooked)
- llm_logits: the rest of the LLM: embeddings, final norm, lm_head and the LM loss (the
  logits over the vocabulary and their fp32 copy)
- sam2_encoder: SAM-2's Hiera + FPN (frozen: ~0)
- decoder_mba: SAM-2's prompt encoder and mask decoder (both passes) and MBA
- criterion: the mask, dice, TMC and boundary losses
- other: everything else (the [SEG] / text projections, ground-truth resizing, ...)
- weight_casts: saved matrices of a parameter's shape in another dtype than the parameter:
  autocast's bf16 copies of fp32 weights, which a layer saves for its input gradient. They
  do not grow with tokens or rows and do not exist where the weights are bf16 already (the
  GPU recipe), so they are kept out of the parts above.

Per unit: llm_layers per token, layer and hidden unit (the guessed "~50 bytes" of
docs/training.md), llm_logits per token, decoder_mba + criterion per grounding row (one
(object, frame) pair). `--checkpointing both` measures with the config's LLM gradient
checkpointing switched on and off on the same built model.
"""

import argparse
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts.bench_train import autocast_context, build, make_batch  # noqa: E402

PARTS = (
    ("vision", ("mllm.vision_model",)),
    ("projector", ("mllm.mlp1",)),
    ("llm_logits", ("mllm.language_model",)),
    ("sam2_encoder", ("grounding.sam2_model.image_encoder",)),
    ("decoder_mba", ("grounding.sam2_model.sam_mask_decoder",
                     "grounding.sam2_model.sam_prompt_encoder", "grounding.mba")),
    ("criterion", ("criterion",)),
)
PART_NAMES = ("vision", "projector", "llm_layers", "llm_logits", "sam2_encoder", "decoder_mba",
              "criterion", "other", "weight_casts")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="K=V",
                   help="config overrides, e.g. pretrained_root=DIR (its tokenizer)")
    p.add_argument("--tiles", type=int, default=1, help="MLLM tiles of the image")
    p.add_argument("--objects", type=int, default=3, help="expressions on the image")
    p.add_argument("--frames", type=int, default=2, help="frames of the video")
    p.add_argument("--autocast", choices=("none", "bf16"), default="bf16",
                   help="forward under torch.autocast (bf16: the CPU training recipe)")
    p.add_argument("--checkpointing", choices=("both", "on", "off"), default="both",
                   help="LLM gradient checkpointing during the measurement")
    p.add_argument("--json", help="also write the results to this file")
    return p.parse_args(argv)


def decoder_layers(model) -> list[tuple[str, torch.nn.Module]]:
    """The LLM's transformer blocks (class name ending in DecoderLayer)."""
    return [(n, m) for n, m in model.mllm.language_model.named_modules()
            if type(m).__name__.endswith("DecoderLayer")]


def base_llm(model):
    llm = model.mllm.language_model
    return llm.get_base_model() if hasattr(llm, "get_base_model") else llm


def set_llm_checkpointing(model, on: bool) -> None:
    llm = base_llm(model)
    if on:
        llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        llm.gradient_checkpointing_disable()


def measure(model, batch: dict, autocast) -> dict:
    """One forward (and its backward, to free the graph): saved bytes per part.

    Returns:
        {"parts": {part: bytes}, "total": bytes, "llm_layer_inputs": bytes of the decoder
         layers' input hidden states (what gradient checkpointing keeps)}.
    """
    stack: list[str] = ["other"]
    handles = []
    layer_inputs: dict[int, int] = {}

    def enter(name):
        def hook(module, args):
            stack.append(name)
        return hook

    def leave(module, args, output):
        stack.pop()

    def record_input(module, args, kwargs):
        hidden = args[0] if args else kwargs.get("hidden_states")
        if torch.is_tensor(hidden):
            layer_inputs[hidden.untyped_storage().data_ptr()] = hidden.untyped_storage().nbytes()

    modules = dict(model.named_modules())
    for part, prefixes in PARTS:
        for prefix in prefixes:
            if prefix in modules:
                handles += [modules[prefix].register_forward_pre_hook(enter(part)),
                            modules[prefix].register_forward_hook(leave)]
    for _, layer in decoder_layers(model):
        handles += [layer.register_forward_pre_hook(enter("llm_layers")),
                    layer.register_forward_hook(leave),
                    layer.register_forward_pre_hook(record_input, with_kwargs=True)]
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    param_dtypes: dict[tuple, set] = {}
    for p in model.parameters():
        param_dtypes.setdefault(tuple(p.shape), set()).add(p.dtype)
    owner: dict[int, tuple[str, int]] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params and ptr not in owner:
            # matrices only: a 0-d or 1-d tensor of a bias' shape is too common to tell
            dtypes = param_dtypes.get(tuple(t.shape)) if t.dim() >= 2 else None
            part = "weight_casts" if dtypes and t.dtype not in dtypes else stack[-1]
            owner[ptr] = (part, t.untyped_storage().nbytes())
        return t

    device = next(model.parameters()).device
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast_context(
                autocast, device):
            loss = sum(model(batch, mode="loss").values())
    finally:
        for handle in handles:
            handle.remove()
    loss.backward()
    model.zero_grad(set_to_none=True)
    parts = dict.fromkeys(PART_NAMES, 0)
    for part, nbytes in owner.values():
        parts[part] += nbytes
    return {"parts": parts, "total": sum(parts.values()),
            "llm_layer_inputs": sum(layer_inputs.values())}


def grounding_rows(batch: dict) -> int:
    """(object, frame) rows of the batch: objects x frames per sample."""
    return sum(m.shape[0] * (m.shape[1] if m.dim() == 4 else 1) for m in batch["masks"])


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device("cpu")
    autocast = {"none": None, "bf16": torch.bfloat16}[args.autocast]
    model = build(args.config, device, args.cfg_options)
    batch = make_batch(model, args.tiles, args.objects, args.frames, device)
    shipped = base_llm(model).is_gradient_checkpointing
    settings = {"both": (True, False), "on": (True,), "off": (False,)}[args.checkpointing]
    cfg = model.mllm.llm_config
    tokens, rows = int(batch["input_ids"].numel()), grounding_rows(batch)
    report = {"config": args.config, "options": args.cfg_options, "autocast": args.autocast,
              "tile_px": model.mllm.vision_model.image_size,
              "sam2_px": model.grounding.image_size, "tokens": tokens, "rows": rows,
              "layers": cfg.num_hidden_layers, "hidden": cfg.hidden_size,
              "vocab": model.mllm.language_model.get_output_embeddings().weight.shape[0],
              "shipped_checkpointing": shipped, "batch": vars(args), "runs": {}}
    for on in settings:
        set_llm_checkpointing(model, on)
        run = measure(model, batch, autocast)
        parts = run["parts"]
        run["per_unit"] = {
            "llm_layers_per_token_layer_hidden": parts["llm_layers"] / (
                tokens * cfg.num_hidden_layers * cfg.hidden_size),
            "llm_layer_inputs_per_token_layer": run["llm_layer_inputs"] / (
                tokens * cfg.num_hidden_layers),
            "llm_logits_per_token": parts["llm_logits"] / tokens,
            "grounding_per_row": (parts["decoder_mba"] + parts["criterion"]) / rows,
        }
        report["runs"]["checkpointing_on" if on else "checkpointing_off"] = run
    set_llm_checkpointing(model, shipped)
    print(f"{args.config} {' '.join(args.cfg_options)}: tile {report['tile_px']} px, SAM-2 "
          f"{report['sam2_px']} px, {tokens} tokens (batch of 2, padded), {rows} grounding "
          f"rows, {cfg.num_hidden_layers} layers x {cfg.hidden_size}, vocab {report['vocab']},"
          f" autocast {args.autocast}")
    for name, run in report["runs"].items():
        cells = "  ".join(f"{k} {v / 2**20:.1f}" for k, v in run["parts"].items())
        print(f"{name}: saved MiB: {cells}  total {run['total'] / 2**20:.1f}  "
              f"(+ layer inputs {run['llm_layer_inputs'] / 2**20:.1f})")
        u = run["per_unit"]
        print(f"  llm_layers {u['llm_layers_per_token_layer_hidden']:.2f} B / token / layer /"
              f" hidden unit; layer input {u['llm_layer_inputs_per_token_layer']:.0f} B / token"
              f" / layer; logits {u['llm_logits_per_token'] / 2**10:.1f} KiB / token; "
              f"grounding {u['grounding_per_row'] / 2**20:.1f} MiB / row")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
