"""Sa2VA's dataset repeats: a training set read `repeats` times per epoch.

Sa2VA weights its training mix by repeating datasets (`repeats=` of every dataset in
`projects/sa2va/configs/sa2va_in30_*b.py`; `Sa2VABaseDataset.__len__` is
`int(real_len * repeats)` and its index map is a permutation of the tiled indices). With a
shuffling sampler over the concatenation, an integer `repeats` is the same as reading index
`i % real_len` for `i < real_len * repeats`: each sample `repeats` times per epoch, in a random
order. A fractional `repeats` (Sa2VA allows 0.2) reads a fixed random subset of
`int(real_len * repeats)` samples (without replacement, as Sa2VA draws it) or, above 1, every
sample `floor(repeats)` times plus such a subset.

Each read draws its own random choices (objects, frames, phrasings) when the wrapped
dataset's `seed` is None, as in Sa2VA. With a fixed `seed` the choices depend on the index of
the wrapped dataset, so the copies repeat the same draw (tests only).
"""

import numpy as np
from torch.utils.data import Dataset

from mpr_cma.datasets.samplers import dataset_lengths
from mpr_cma.registry import DATASETS


@DATASETS.register_module()
class RepeatedDataset(Dataset):
    """A dataset read `repeats` times per epoch (Sa2VA's `repeats=`).

    Args:
        dataset: the dataset or its config dict (built from the registry).
        repeats: how many times per epoch; > 0, may be fractional.
        subset_seed: seed of the fixed subset a fractional part reads (numpy generator).

    Raises:
        ValueError: `repeats` is not a positive number, or selects no sample at all.
    """

    def __init__(self, dataset: Dataset | dict, repeats: float, subset_seed: int = 0) -> None:
        if isinstance(repeats, bool) or not isinstance(repeats, int | float) or repeats <= 0:
            raise ValueError(f"RepeatedDataset: repeats must be a positive number, got "
                             f"{repeats!r}")
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        self.repeats = repeats
        real = len(self.dataset)
        whole = int(repeats)
        extra = int(real * repeats) - whole * real
        rng = np.random.default_rng(subset_seed)
        tail = np.sort(rng.choice(real, size=extra, replace=False)) if extra else []
        self._indices = np.concatenate(
            [np.tile(np.arange(real), whole), np.asarray(tail, dtype=np.int64)]).astype(np.int64)
        if len(self._indices) == 0:
            raise ValueError(f"RepeatedDataset: repeats={repeats} of {type(self.dataset).__name__}"
                             f" ({real} samples) selects no sample")

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, index: int) -> dict:
        return self.dataset[int(self._indices[index])]

    @property
    def modality_length(self) -> list[int]:
        """Per-sample lengths (LengthGroupedSampler's `modality_length`), repeated."""
        lengths = dataset_lengths(self.dataset)
        return [lengths[i] for i in self._indices]
