"""A tiny synthetic referring dataset and its collate, for the training tests only.

Each sample is built like `tests/models/test_sa2va.make_batch` (the shipped tiny tokenizer,
`encode_conversation`, random tiles and SAM-2 frames, box masks) and is a pure function of
its index and `seed`, so runs are reproducible and resumable without any RNG state. The
collate returns `{"data": batch, "data_samples": None}`, batch following the contract in
`mpr_cma/models/sa2va.py`. The real datasets (`configs/_base_/datasets/`) replace these.
"""

import torch
from torch.utils.data import Dataset

from mpr_cma.models.mllm.template import IGNORE_INDEX, encode_conversation
from mpr_cma.models.mllm.tokenizer import add_special_tokens, load_tokenizer, tiny_tokenizer_path
from mpr_cma.registry import DATASETS, FUNCTIONS

EXPRESSIONS = ["the red circle", "the square on the left", "the small blue triangle"]


def _find_span(ids: list[int], sub: list[int]) -> tuple[int, int]:
    for start in range(len(ids) - len(sub) + 1):
        if ids[start:start + len(sub)] == sub:
            return start, start + len(sub)
    raise ValueError("expression tokens not found in the prompt")


@DATASETS.register_module()
class FakeReferDataset(Dataset):
    """Image (1 frame) and video (`video_frames` frames) referring samples, deterministic.

    Args:
        num_samples: dataset length.
        video_frames: SAM-2 frames of odd-index samples (even ones are images).
        tile_size: MLLM tile size (the tiny InternVL preset uses 56).
        tokens_per_tile: LLM tokens per tile (4 for the tiny preset).
        sam_size: SAM-2 input size (the tiny config uses 64).
        repeat_first: every index returns sample 0 (for overfitting one batch).
        seed: base seed of the per-sample generators.
    """

    def __init__(self, num_samples: int = 16, video_frames: int = 2, tile_size: int = 56,
                 tokens_per_tile: int = 4, sam_size: int = 64, repeat_first: bool = False,
                 seed: int = 0):
        self.num_samples = num_samples
        self.video_frames = video_frames
        self.tile_size = tile_size
        self.tokens_per_tile = tokens_per_tile
        self.sam_size = sam_size
        self.repeat_first = repeat_first
        self.seed = seed
        self.tokenizer = load_tokenizer(tiny_tokenizer_path())
        add_special_tokens(self.tokenizer)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> dict:
        index = 0 if self.repeat_first else index
        g = torch.Generator().manual_seed(self.seed * 100003 + index)
        frames = self.video_frames if index % 2 else 1
        objects = 1 + index % 2
        exprs = [EXPRESSIONS[(index + j) % len(EXPRESSIONS)] for j in range(objects)]
        turns = [(("<image>\n" if j == 0 else "") + f"Please segment {e}.", "It is [SEG].")
                 for j, e in enumerate(exprs)]
        enc = encode_conversation(self.tokenizer, turns,
                                  num_image_tokens=frames * self.tokens_per_tile,
                                  num_frames=frames)
        spans = [_find_span(enc["input_ids"],
                            self.tokenizer.encode(" " + e, add_special_tokens=False))
                 for e in exprs]
        masks = torch.zeros(objects, frames, 32, 32, dtype=torch.bool)
        for j in range(objects):
            top, left = torch.randint(0, 16, (2,), generator=g).tolist()
            for t in range(frames):
                masks[j, t, top + t:top + t + 12, left:left + 14] = True
        return {"input_ids": enc["input_ids"], "labels": enc["labels"],
                "pixel_values": torch.randn(frames, 3, self.tile_size, self.tile_size,
                                            generator=g),
                "g_pixel_values": torch.randn(frames, 3, self.sam_size, self.sam_size,
                                              generator=g),
                "masks": masks, "expression_spans": spans}


@FUNCTIONS.register_module()
def fake_refer_collate(samples: list[dict], pad_token_id: int = 0) -> dict:
    """Pad token sequences to the longest one and concatenate the tiles (batch contract)."""
    length = max(len(s["input_ids"]) for s in samples)
    input_ids = torch.full((len(samples), length), pad_token_id, dtype=torch.long)
    labels = torch.full((len(samples), length), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros(len(samples), length, dtype=torch.long)
    for i, s in enumerate(samples):
        n = len(s["input_ids"])
        input_ids[i, :n] = torch.tensor(s["input_ids"])
        labels[i, :n] = torch.tensor(s["labels"])
        attention[i, :n] = 1
    data = {"input_ids": input_ids, "labels": labels, "attention_mask": attention,
            "pixel_values": torch.cat([s["pixel_values"] for s in samples]),
            "g_pixel_values": [s["g_pixel_values"] for s in samples],
            "masks": [s["masks"] for s in samples],
            "expression_spans": [s["expression_spans"] for s in samples]}
    return {"data": data, "data_samples": None}
