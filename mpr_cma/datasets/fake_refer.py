"""A tiny random referring dataset for CPU training runs (configs/tiny/train_tiny.py, tests).

Each sample is built with the real conversation encoder (`encode_referring`: the shipped
tiny tokenizer, exact expression spans), random tiles and SAM-2 frames and box masks, and is
a pure function of its index and `seed`, so runs are reproducible and resumable without any
RNG state. Batch it with the real `sa2va_collate`. Registered in DATASETS when imported
(the tiny configs list this module in `custom_imports`); the real datasets are
configs/_base_/datasets/.
"""

import torch
from torch.utils.data import Dataset

from mpr_cma.datasets import encode_referring, sentence_ids
from mpr_cma.models.mllm.tokenizer import add_special_tokens, load_tokenizer, tiny_tokenizer_path
from mpr_cma.registry import DATASETS

EXPRESSIONS = ["the red circle", "the square on the left", "the small blue triangle"]


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
        enc = encode_referring(self.tokenizer, exprs, frames * self.tokens_per_tile, frames)
        masks = torch.zeros(objects, frames, 32, 32, dtype=torch.bool)
        for j in range(objects):
            top, left = torch.randint(0, 16, (2,), generator=g).tolist()
            for t in range(frames):
                masks[j, t, top + t:top + t + 12, left:left + 14] = True
        return {"input_ids": torch.tensor(enc.input_ids), "labels": torch.tensor(enc.labels),
                "pixel_values": torch.randn(frames, 3, self.tile_size, self.tile_size,
                                            generator=g),
                "g_pixel_values": torch.randn(frames, 3, self.sam_size, self.sam_size,
                                              generator=g),
                "masks": masks, "expression_spans": enc.expression_spans,
                "sentence_ids": sentence_ids(enc.expressions), "sentences": enc.expressions}
