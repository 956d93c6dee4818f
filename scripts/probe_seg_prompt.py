"""Does the tiny MLLM's [SEG] state carry the sentence into SAM-2? (issue 13, root cause)

`scripts/probe_prompt_grounding.py` showed that SAM-2 alone follows a distinct prompt per
kind of object. This probe trains the whole demo model (`configs/tiny/demo.py`: MLLM,
text projections, two-pass grounding with MBA, every loss term) in one process on the
RefCOCO-layout training split of a synthetic data root, and scores its masks on the val
split, teacher-forced (the ground-truth conversation, so every [SEG] is where training
puts it). It prints, per evaluation:

- "ciou": cumulative IoU of each (object) row's mask with its ground truth;
- "every_object": the same for the union of the conversation's objects (what a model
  that ignores the sentence reaches);
- "prompt_cosine": the mean cosine between the SAM-2 prompts of one conversation (1 =
  the prompts do not differ, so SAM-2 cannot tell the objects apart).

`--prompt oracle` replaces the MLLM's prompt with a learned embedding per distinct
sentence (on data of attribute expressions only, `make_synthetic_data.py --image-kinds
attribute`, a sentence names one kind of object), with `--oracle-std` its init scale:
what SAM-2 can do when the prompt is known to differ. `--answer-style` trains with
Sa2VA's answers ("sa2va") or with "[SEG] red circle." ("seg_names_object"):

    python scripts/make_synthetic_data.py --out D --image-kinds attribute --train-images 2000
    python scripts/probe_seg_prompt.py --data D --answer-style sa2va --steps 800
    python scripts/probe_seg_prompt.py --data D --answer-style seg_names_object --steps 800
    python scripts/probe_seg_prompt.py --data D --prompt oracle --steps 800

Prints one JSON line per evaluation and a final JSON summary (also to --out).
"""

import argparse
import json
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mpr_cma.checkpoint.load import build_model
from mpr_cma.datasets import sa2va_collate
from mpr_cma.datasets.conversation import ANSWER_STYLES
from mpr_cma.engine.config import load_config
from mpr_cma.registry import DATASETS

PROMPTS = ("seg", "oracle")


class SentencePrompts(torch.nn.Module):
    """The oracle: a learned SAM-2 prompt per distinct sentence (ids assigned on first use)."""

    def __init__(self, dim: int, capacity: int = 4096, std: float = 1.0):
        super().__init__()
        self.table = torch.nn.Embedding(capacity, dim)
        torch.nn.init.normal_(self.table.weight, std=std)
        self.index: dict[int, int] = {}

    def forward(self, sentence_ids: torch.Tensor) -> torch.Tensor:
        """(O,) int64 sentence hashes -> (O, 1, C) prompts."""
        rows = [self.index.setdefault(int(s), len(self.index)) for s in sentence_ids]
        if len(self.index) > self.table.num_embeddings:
            raise ValueError(f"more than {self.table.num_embeddings} distinct sentences")
        return self.table(torch.tensor(rows, device=self.table.weight.device))[:, None]


def conversation_cosine(prompts: torch.Tensor, num_objects: list[int]) -> list[float]:
    """Mean pairwise cosine of the prompts of each conversation with >= 2 objects.

    Args:
        prompts: (O, C) in the batch's object order. num_objects: O_i per conversation.
    """
    out, start = [], 0
    for n in num_objects:
        if n > 1:
            unit = torch.nn.functional.normalize(prompts[start:start + n].float(), dim=-1)
            out.append(float(((unit @ unit.T).sum() - n) / (n * n - n)))
        start += n
    return out


def attach_probe(model, prompt: str, oracle: SentencePrompts | None) -> dict:
    """Wrap `model.object_text` to record prompt cosines and (oracle) swap the prompts.

    Returns:
        a dict the wrapper fills: "cosines" (list of float), and reads: "sentence_ids".
    """
    state: dict = {"cosines": [], "sentence_ids": None}
    original = model.object_text

    def object_text(self, hidden, input_ids, num_objects, spans):
        out = original(hidden, input_ids, num_objects, spans)
        if prompt == "oracle":
            out["prompt"] = oracle(torch.cat(list(state["sentence_ids"])))
        state["cosines"] += conversation_cosine(out["prompt"][:, 0].detach(), num_objects)
        return out

    model.object_text = types.MethodType(object_text, model)
    return state


def batch_of(model, samples: list[dict]) -> dict:
    """The model's input dict for samples (collate + data preprocessor)."""
    batch = model.data_preprocessor(sa2va_collate(samples, model.tokenizer.pad_token_id), True)
    return batch.get("data", batch)


@torch.no_grad()
def evaluate(model, samples: list[dict], state: dict, batch_size: int = 8) -> dict:
    """Teacher-forced val scores: {"ciou", "every_object", "prompt_cosine"}."""
    model.eval()
    inter = union = inter_all = union_all = 0
    state["cosines"] = []
    for i in range(0, len(samples), batch_size):
        data = batch_of(model, samples[i:i + batch_size])
        state["sentence_ids"] = data["sentence_ids"]
        run = model.run_batch(data)
        logits = run["grounding"]["pred_masks"]
        gt = torch.cat(model._ground_truth_rows(data["masks"], model.ground_truth_size(logits)))
        pred = torch.nn.functional.interpolate(logits.float(), size=gt.shape[-2:],
                                               mode="bilinear")[:, 0] > 0
        gt = gt > 0.5
        inter += int((pred & gt).sum())
        union += int((pred | gt).sum())
        start = 0
        for masks in data["masks"]:
            n = masks.shape[0] * masks.shape[1]
            rows = gt[start:start + n]
            every = rows.any(0, keepdim=True).expand_as(rows)
            inter_all += int((every & rows).sum())
            union_all += int((every | rows).sum())
            start += n
    model.train()
    return {"ciou": round(inter / max(union, 1), 4),
            "every_object": round(inter_all / max(union_all, 1), 4),
            "prompt_cosine": round(float(np.mean(state["cosines"])), 4)}


def run_probe(data: str | Path, steps: int = 800, prompt: str = "seg",
              answer_style: str | None = None, config: str = "configs/tiny/demo.py",
              cfg_options: list[str] | None = None, batch: int = 4, lr: float | None = None,
              eval_every: int = 100, oracle_std: float = 1.0, seed: int = 0,
              progress: bool = True) -> dict:
    """Train the config's model on `data`'s RefCOCO train split; score val as it goes.

    Returns:
        {"prompt", "answer_style", "steps", "seconds", "ciou", "every_object",
         "prompt_cosine" (final values), "history": [{"step", "loss", "ciou",
         "every_object", "prompt_cosine"}]}.
    """
    if prompt not in PROMPTS:
        raise ValueError(f"--prompt must be one of {PROMPTS}, got {prompt!r}")
    cfg = load_config(config, cfg_options=[f"data_root={data}", *(cfg_options or [])])
    parts = cfg.train_dataloader.dataset.get("datasets", [cfg.train_dataloader.dataset])
    refcoco = [dict(d) for d in parts if d.get("type") == "RefCOCODataset"]
    if not refcoco:
        raise ValueError(f"{config} trains on no RefCOCODataset")
    dataset_cfg = refcoco[0]
    if answer_style is not None:
        dataset_cfg["answer_style"] = answer_style
    train = DATASETS.build({**dataset_cfg, "seed": seed})
    val = DATASETS.build({**dataset_cfg, "split": "val", "seed": seed})
    model = build_model(cfg.model, pretrained=False, seed=seed)
    oracle = SentencePrompts(model.grounding.hidden_dim, std=oracle_std) \
        if prompt == "oracle" else None
    state = attach_probe(model, prompt, oracle)
    params = [p for p in model.parameters() if p.requires_grad]
    params += list(oracle.parameters()) if oracle is not None else []
    optim = torch.optim.AdamW(params, lr=lr if lr is not None else cfg.lr, weight_decay=0.0)
    val_samples = [val[i] for i in range(len(val))]
    rng = np.random.default_rng(seed)
    history, start = [], time.time()
    model.train()
    bar = tqdm(range(1, steps + 1), desc=f"probe {prompt}/{train.answer_style}",
               disable=not progress, file=sys.stderr)
    for step in bar:
        data_batch = batch_of(model, [train[int(i)] for i in rng.integers(len(train),
                                                                          size=batch)])
        state["sentence_ids"] = data_batch["sentence_ids"]
        loss = sum(model(data_batch, mode="loss").values())
        optim.zero_grad()
        loss.backward()
        optim.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if step % eval_every == 0 or step == steps:
            history.append({"step": step, "loss": round(loss.item(), 4),
                            **evaluate(model, val_samples, state)})
            bar.write(json.dumps(history[-1]), file=sys.stderr)
    last = history[-1]
    return {"prompt": prompt, "answer_style": train.answer_style, "steps": steps,
            "seconds": round(time.time() - start, 1), "ciou": last["ciou"],
            "every_object": last["every_object"], "prompt_cosine": last["prompt_cosine"],
            "history": history}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path,
                        help="synthetic data root (scripts/make_synthetic_data.py)")
    parser.add_argument("--config", default="configs/tiny/demo.py")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--prompt", default="seg", choices=PROMPTS)
    parser.add_argument("--answer-style", choices=ANSWER_STYLES,
                        help="default: the config's")
    parser.add_argument("--oracle-std", type=float, default=1.0,
                        help="init std of the oracle prompts (SAM-2's own tokens: ~1)")
    parser.add_argument("--batch", type=int, default=4, help="conversations per step")
    parser.add_argument("--lr", type=float, help="default: the config's lr")
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--cfg-options", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, help="also write the summary JSON here")
    args = parser.parse_args(argv)
    if not (args.data / "refcoco").is_dir():
        parser.error(f"--data {args.data}: no refcoco/ folder (make_synthetic_data.py output)")
    torch.set_num_threads(args.threads)
    result = run_probe(args.data, args.steps, args.prompt, args.answer_style, args.config,
                       args.cfg_options, args.batch, args.lr, args.eval_every,
                       args.oracle_std, args.seed)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
