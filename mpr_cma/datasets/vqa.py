"""LLaVA-style chat data (llava_v1_5_mix665k.json), kept in training so the LLM keeps chatting.

Each entry: {"id", "image" (relative to `image_root`, may be absent), "conversations":
[{"from": "human"|"gpt", "value": "<image>\\n..."}]}. Samples have no masks. A text-only
sample carries one dummy tile with image flag 0, as InternVL's datasets do: the collate
function drops it when the batch has real tiles and keeps one otherwise, so the vision
projector always stays in the graph.
"""

import json
import random
from pathlib import Path

import torch
from mmengine.logging import print_log
from transformers import PreTrainedTokenizerBase

from mpr_cma.datasets.base import SkippingDataset, check_path
from mpr_cma.datasets.refcoco import build_tokenizer
from mpr_cma.models.mllm.preprocess import load_image_tiles
from mpr_cma.models.mllm.template import encode_conversation, turns_from_llava
from mpr_cma.models.mllm.tokenizer import SEG_TOKEN
from mpr_cma.registry import DATASETS

# Rough tokens per word of English text, for the sampler's length estimate.
TOKENS_PER_WORD = 1.5
# Tiles assumed for an image whose size is unknown before it is opened (the estimate only
# groups samples of similar length; Sa2VA uses a constant for every sample).
ESTIMATED_TILES = 7


@DATASETS.register_module()
class LLaVADataset(SkippingDataset):
    """LLaVA chat data for training; no masks.

    Args:
        data_root: folder holding `ann_file` and the images (unless image_root is given).
        ann_file: the JSON list, relative to data_root.
        image_root: folder the entries' "image" paths are relative to; default data_root.
        tokenizer, mllm_image_size, num_image_tokens_per_tile, max_tiles: as in
            `RefCOCODataset`.
        max_length: longer conversations are truncated (xtuner's rule; never inside the
            image tokens - such a sample is skipped).
        seed, max_refetch: see `SkippingDataset`.

    Raises:
        FileNotFoundError: missing data_root, ann_file or image_root (named).
        ValueError: ann_file is not a list of entries with "conversations".
    """

    def __init__(self, data_root: str | Path, ann_file: str = "llava_v1_5_mix665k.json",
                 image_root: str | Path | None = None,
                 tokenizer: PreTrainedTokenizerBase | str = "tiny", mllm_image_size: int = 448,
                 num_image_tokens_per_tile: int = 256, max_tiles: int = 12,
                 max_length: int = 8192, seed: int | None = None, max_refetch: int = 20) -> None:
        super().__init__(seed, max_refetch)
        root = check_path(data_root, "data_root")
        self.ann_file = check_path(root / ann_file, "LLaVA annotation file")
        self.image_root = check_path(image_root if image_root is not None else root,
                                     "image folder")
        entries = json.loads(self.ann_file.read_text())
        if not isinstance(entries, list) or not all(
                isinstance(e, dict) and "conversations" in e for e in entries):
            raise ValueError(f"{self.ann_file}: expected a list of entries with 'conversations'")
        self.entries = entries
        self.tokenizer = build_tokenizer(tokenizer)
        self.seg_token_id = self.tokenizer.convert_tokens_to_ids(SEG_TOKEN)
        self.mllm_image_size, self.tokens_per_tile = mllm_image_size, num_image_tokens_per_tile
        self.max_tiles, self.max_length = max_tiles, max_length
        print_log(f"LLaVADataset: {len(entries)} conversations from {self.ann_file}",
                  logger="current")

    def __len__(self) -> int:
        return len(self.entries)

    def describe(self, index: int) -> str:
        entry = self.entries[index]
        return f"{self.ann_file} entry {entry.get('id', index)!r} (image {entry.get('image')!r})"

    @property
    def modality_length(self) -> list[int]:
        """Estimated token count; negative for text-only samples (xtuner's convention)."""
        lengths = []
        for entry in self.entries:
            words = sum(len(str(m.get("value", "")).split()) for m in entry["conversations"])
            n = int(words * TOKENS_PER_WORD)
            if entry.get("image"):
                lengths.append(n + ESTIMATED_TILES * self.tokens_per_tile)
            else:
                lengths.append(-max(n, 1))
        return lengths

    def load(self, index: int, rng: random.Random) -> dict:
        """One sample (see `collate.sa2va_collate` for the keys)."""
        entry = self.entries[index]
        turns = turns_from_llava(entry["conversations"])
        if not turns or turns[-1].answer is None:
            raise ValueError("conversation has no answered turn")
        if entry.get("image"):
            tiles = load_image_tiles(self.image_root / entry["image"], self.max_tiles,
                                     self.mllm_image_size)
            flags = torch.ones(tiles.shape[0], dtype=torch.long)
            num_tokens = tiles.shape[0] * self.tokens_per_tile
        else:
            size = self.mllm_image_size
            tiles, num_tokens = torch.zeros(1, 3, size, size), 0
            flags = torch.zeros(1, dtype=torch.long)
        enc = encode_conversation(self.tokenizer, turns, num_image_tokens=num_tokens,
                                  max_length=self.max_length)
        if all(label < 0 for label in enc["labels"]):
            raise ValueError("no supervised token left after truncation")
        if self.seg_token_id in enc["input_ids"]:
            # A [SEG] without a mask would break the model's [SEG]-per-object check.
            raise ValueError(f"chat text holds {SEG_TOKEN}")
        return {
            "input_ids": torch.tensor(enc["input_ids"], dtype=torch.long),
            "labels": torch.tensor(enc["labels"], dtype=torch.long),
            "pixel_values": tiles,
            "image_flags": flags,
            "meta": {"dataset": "llava", "id": entry.get("id", index)},
        }
