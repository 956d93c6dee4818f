"""Shared pieces of the training datasets: bad-sample skipping, SAM-2 input, sentence ids.

Bad data (a corrupt image, an RLE that does not decode, an expression pointing at a missing
annotation) must neither crash a data-loader worker deep in a run nor be used silently: a
sample whose loading raises one of `BAD_SAMPLE_ERRORS` is logged with its file / id, counted,
and replaced by the next index (deterministically), at most `max_refetch` times in a row.
Errors outside that list (bugs) propagate. Paths are checked when a dataset is built, so a
wrong data_root fails at start with the missing path.

The SAM-2 input of a training sample (`sam2_pixels`) is Sa2VA's training input: PIL
bicubic resize to S x S (its `DirectResize`) and fp32 ImageNet normalisation (its
`SAM2TrainRunner.preprocess_image`), the transforms of `mpr_cma.models.grounding.transforms`
(inference normalises in bf16 instead, as Sa2VA's `predict_forward` does).
"""

import hashlib
import logging
import random
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from mmengine.logging import print_log
from PIL import Image
from torch.utils.data import Dataset

from mpr_cma.models.grounding.transforms import sam2_input

# Decoding and annotation errors of one sample: OSError (unreadable or corrupt image, named
# by mllm.preprocess.open_image), ValueError (malformed RLE / polygon, too long a prompt),
# KeyError (an anno_id / ann_id missing from the annotation files).
BAD_SAMPLE_ERRORS = (OSError, ValueError, KeyError, Image.DecompressionBombError)


def check_path(path: str | Path, what: str) -> Path:
    """The path, or FileNotFoundError naming it (and `what` it should be)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def sam2_pixels(image: Image.Image, size: int) -> torch.Tensor:
    """SAM-2 input of one RGB image as Sa2VA trains: PIL bicubic resize to size x size,
    then `(x / 255 - mean) / std` in fp32 with the ImageNet statistics.

    Returns:
        (3, size, size) float32.
    """
    return sam2_input([image.convert("RGB")], size, "fp32")[0]


def sentence_ids(sentences: list[str]) -> torch.Tensor:
    """Stable int64 ids, equal for equal (whitespace / case-normalised) sentences.

    The same hash as `mpr_cma.losses.tmc.sentence_ids_from_texts` (not imported: datasets do
    not depend on losses); a test keeps the two equal. Stable across processes, unlike
    Python's `hash`, so ids from different workers and ranks compare.
    """
    ids = []
    for text in sentences:
        key = " ".join(text.lower().split()).encode("utf-8")
        ids.append(int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") >> 1)
    return torch.tensor(ids, dtype=torch.long)


class SkippingDataset(Dataset):
    """Base of the training datasets: `__getitem__` skips bad samples (see module doc).

    Subclasses implement `__len__`, `load(index, rng)` and `describe(index)` (file / id of
    a sample, for the log).

    Args:
        seed: None draws the sample's random choices (objects, frames, phrasings) from
            numpy's global generator, which mmengine seeds per rank and worker; an int makes
            every index's choices fixed (tests, debugging).
        max_refetch: consecutive bad samples tolerated before giving up.
    """

    def __init__(self, seed: int | None = None, max_refetch: int = 20) -> None:
        self.seed = seed
        self.max_refetch = max_refetch
        self.skipped: Counter = Counter()

    def load(self, index: int, rng: random.Random) -> dict:
        raise NotImplementedError

    def describe(self, index: int) -> str:
        return f"index {index}"

    def rng(self, index: int) -> random.Random:
        """The random generator of one draw of sample `index`."""
        if self.seed is None:
            return random.Random(int(np.random.randint(0, 2**31 - 1)))
        return random.Random(self.seed * 1_000_003 + index)

    def __getitem__(self, index: int) -> dict:
        n = len(self)
        for attempt in range(self.max_refetch + 1):
            current = (index + attempt) % n
            try:
                return self.load(current, self.rng(current))
            except BAD_SAMPLE_ERRORS as err:
                self.skipped[type(err).__name__] += 1
                total = sum(self.skipped.values())
                print_log(f"{type(self).__name__}: skipped bad sample {self.describe(current)}: "
                          f"{type(err).__name__}: {err} ({total} skipped so far in this process)",
                          logger="current", level=logging.WARNING)
        raise RuntimeError(f"{type(self).__name__}: {self.max_refetch + 1} consecutive bad "
                           f"samples from index {index}; skipped so far: {dict(self.skipped)}")
