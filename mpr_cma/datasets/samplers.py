"""Length-grouped sampling for mixed referring / chat training, and a length-keeping concat.

Batches of samples of similar token length waste less padding. Like xtuner's and Hugging
Face's LengthGroupedSampler: each epoch the indices are shuffled (seed + epoch), cut into
mega-batches of `per_device_batch_size * world_size * mega_batch_mult` indices, each sorted by
length (longest first), and dealt to the ranks round-robin, so every rank's consecutive
`per_device_batch_size` indices have similar lengths. Lengths come from the datasets'
`modality_length` (negative = text only, xtuner's convention; the absolute value is used).

The interface is mmengine's `DefaultSampler` (`set_epoch`, `round_up`, a seed shared by the
ranks). mmengine's IterBasedTrainLoop resumes by drawing (and loading) the batches already
trained on; `set_resume_position` lets the resume code skip them without loading anything.
"""

import math
from collections.abc import Iterator, Sequence

import torch
from mmengine.dist import get_dist_info, sync_random_seed
from mmengine.registry import DATA_SAMPLERS
from torch.utils.data import ConcatDataset as TorchConcatDataset
from torch.utils.data import Dataset, Sampler

from mpr_cma.registry import DATASETS


@DATASETS.register_module()
class ConcatDataset(TorchConcatDataset):
    """Concatenation of training datasets that keeps their `modality_length`.

    mmengine's ConcatDataset only takes `BaseDataset` subclasses; this one takes any map-style
    dataset or config dict (built from the registry). Registered as "ConcatDataset" in the
    mpr_cma scope, so configs keep the familiar name.

    Args:
        datasets: datasets or their config dicts.
    """

    def __init__(self, datasets: Sequence[Dataset | dict]) -> None:
        super().__init__([DATASETS.build(d) if isinstance(d, dict) else d for d in datasets])

    @property
    def modality_length(self) -> list[int]:
        return dataset_lengths(self)


def dataset_lengths(dataset: Dataset, length_property: str = "modality_length") -> list[int]:
    """Per-sample lengths of a dataset or of a (torch / mmengine) concatenation of datasets.

    Raises:
        AttributeError: a dataset has neither the property nor sub-datasets.
    """
    subsets = getattr(dataset, "datasets", None)
    if subsets is not None:  # a torch, mmengine or mpr_cma ConcatDataset
        return [n for d in subsets for n in dataset_lengths(d, length_property)]
    if not hasattr(dataset, length_property):
        raise AttributeError(f"{type(dataset).__name__} has no `{length_property}` for "
                             "LengthGroupedSampler")
    lengths = list(getattr(dataset, length_property))
    if len(lengths) != len(dataset):
        raise ValueError(f"{type(dataset).__name__}.{length_property} has {len(lengths)} "
                         f"entries for {len(dataset)} samples")
    return lengths


def length_grouped_indices(lengths: Sequence[int], group_size: int,
                           generator: torch.Generator) -> list[int]:
    """A random permutation, sorted by |length| (descending) inside each group_size chunk."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    out = []
    for start in range(0, len(order), group_size):
        chunk = order[start:start + group_size]
        out += sorted(chunk, key=lambda i: -abs(lengths[i]))
    return out


@DATA_SAMPLERS.register_module()
class LengthGroupedSampler(Sampler):
    """Shuffled sampler grouping samples of similar length (see the module docstring).

    Args:
        dataset: a dataset with `modality_length` (or a concatenation of such).
        per_device_batch_size: the data loader's batch size.
        mega_batch_mult: mega-batch size in batches; None = min(50, len // (4 * batch *
            world)) at least 1 (the Hugging Face rule).
        length_property: name of the lengths attribute.
        seed: shared by all ranks; None = mmengine's synchronised random seed.
        round_up: repeat indices so every rank gets the same count (DefaultSampler's rule).
    """

    def __init__(self, dataset: Dataset, per_device_batch_size: int,
                 mega_batch_mult: int | None = None, length_property: str = "modality_length",
                 seed: int | None = None, round_up: bool = True) -> None:
        rank, world_size = get_dist_info()
        self.rank, self.world_size = rank, world_size
        self.dataset = dataset
        self.lengths = dataset_lengths(dataset, length_property)
        self.seed = sync_random_seed() if seed is None else seed
        self.round_up = round_up
        n = len(self.lengths)
        if round_up:
            self.num_samples = math.ceil(n / world_size)
            self.total_size = self.num_samples * world_size
        else:
            self.num_samples = math.ceil((n - rank) / world_size)
            self.total_size = n
        if mega_batch_mult is None:
            mega_batch_mult = max(1, min(50, n // (4 * per_device_batch_size * world_size)))
        self.group_size = mega_batch_mult * per_device_batch_size * world_size
        self.epoch = 0
        self.start = 0

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        indices = length_grouped_indices(self.lengths, self.group_size, generator)
        if self.round_up and indices:
            indices = (indices * math.ceil(self.total_size / len(indices)))[: self.total_size]
        mine = indices[self.rank:self.total_size:self.world_size]
        start, self.start = self.start, 0
        return iter(mine[start:])

    def __len__(self) -> int:
        return self.num_samples - self.start

    def set_epoch(self, epoch: int) -> None:
        """Use a new shuffle for this epoch (mmengine calls it at every epoch)."""
        self.epoch = epoch

    def set_resume_position(self, samples_seen: int) -> None:
        """Start the next iteration after this rank's first `samples_seen` indices of the
        current epoch (resume mid-epoch without loading the skipped samples)."""
        if not 0 <= samples_seen <= self.num_samples:
            raise ValueError(f"samples_seen must be in [0, {self.num_samples}], got {samples_seen}")
        self.start = samples_seen
