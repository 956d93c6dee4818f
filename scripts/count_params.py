"""Count the parameters of model configs without weights (built on the meta device).

Usage:
    python scripts/count_params.py CONFIG [CONFIG ...] [--markdown]

Prints total and trainable parameters per config, split by top-level module. Weight paths
in the configs are ignored (nothing is loaded). When the config's tokenizer folder is not
on this machine, the shipped tiny tokenizer is used and the LLM embeddings are resized to
InternVL2.5's vocabulary plus Sa2VA's 5 special tokens (151,674 + 5), which is what the
real tokenizer gives.
"""

import argparse
from pathlib import Path

import torch

from mpr_cma.engine.config import load_config
from mpr_cma.models.mllm.tokenizer import SA2VA_SPECIAL_TOKENS
from mpr_cma.registry import MODELS

INTERNVL2_5_VOCAB = 151674


def count(config: str) -> dict[str, dict[str, int]]:
    cfg = load_config(config).model
    cfg.mllm_pretrained = None
    cfg.grounding.ckpt_path = None
    real_tokenizer = isinstance(cfg.tokenizer, str) and Path(cfg.tokenizer).is_dir()
    if not real_tokenizer:
        cfg.tokenizer = "tiny"
    with torch.device("meta"):
        model = MODELS.build(cfg)
        if not real_tokenizer and model.mllm.llm_config.vocab_size >= INTERNVL2_5_VOCAB:
            model.mllm.resize_token_embeddings(INTERNVL2_5_VOCAB + len(SA2VA_SPECIAL_TOKENS),
                                               mean_resizing=False)
    parts: dict[str, dict[str, int]] = {}
    for name, param in model.named_parameters():
        key = ".".join(name.split(".")[:2]) if name.startswith(("mllm.", "grounding.")) \
            else name.split(".")[0]
        key = "grounding.sam2_model" if key.startswith("grounding.sam2") else key
        part = parts.setdefault(key, {"total": 0, "trainable": 0})
        part["total"] += param.numel()
        part["trainable"] += param.numel() if param.requires_grad else 0
    parts["all"] = {k: sum(p[k] for p in parts.values()) for k in ("total", "trainable")}
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("configs", nargs="+")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args()
    rows = [(config, count(config)) for config in args.configs]
    if args.markdown:
        print("| config | total | trainable | of which MBA | of which TMC heads | "
              "text_token_fcs |")
        print("|---|---:|---:|---:|---:|---:|")
        for config, parts in rows:
            extra = [parts.get(k, {"total": 0})["total"]
                     for k in ("grounding.mba", "criterion", "text_token_fcs")]
            print(f"| `{config}` | {parts['all']['total']:,} | {parts['all']['trainable']:,} | "
                  + " | ".join(f"{v:,}" for v in extra) + " |")
        return
    for config, parts in rows:
        print(config)
        for key, value in parts.items():
            print(f"  {key:<28}{value['total']:>15,}{value['trainable']:>15,}")


if __name__ == "__main__":
    main()
