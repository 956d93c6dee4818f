"""Length-grouped sampling for mixed referring / chat training, and a length-keeping concat.

The sampler is xtuner's LengthGroupedSampler, the one Sa2VA trains with
(`length_property='modality_length'`, `per_device_batch_size = batch * accumulation`).
Its rule, per epoch (seed + epoch): the samples with an image (length > 0) and the
text-only ones (length < 0, xtuner's convention) are shuffled and cut into mega-batches of
`per_device_batch_size * world_size * mega_batch_mult` indices separately, each mega-batch
sorted longest first; the mega-batches of both kinds but the two last are shuffled
together, the two last form one final mixed mega-batch, and the longest sample overall is
swapped to the front. With `round_up` every rank draws ceil(n / world / per_device_batch)
* per_device_batch indices (the front of the order repeated), dealt round-robin.

The subclass adds only what resume needs: `set_resume_position` starts the next pass
after this rank's first `samples_seen` indices, so mpr_cma.engine.resume can continue an
epoch without loading the samples already trained on (mmengine's loop replays them).
"""

from collections.abc import Iterator, Sequence

from mmengine.registry import DATA_SAMPLERS
from torch.utils.data import ConcatDataset as TorchConcatDataset
from torch.utils.data import Dataset
from xtuner.dataset.samplers import LengthGroupedSampler as XtunerLengthGroupedSampler

from mpr_cma.registry import DATASETS


@DATASETS.register_module()
class ConcatDataset(TorchConcatDataset):
    """Concatenation of training datasets that keeps their `modality_length`.

    Not xtuner's ConcatDataset: that one builds its parts with xtuner's BUILDER registry,
    which does not know the datasets registered in the mpr_cma scope by name
    (`type='RefCOCODataset'`), and mmengine's only takes `BaseDataset` subclasses. This
    one takes any map-style dataset or config dict (built from mpr_cma's registry).
    Registered as "ConcatDataset" in the mpr_cma scope, so configs keep the familiar name.

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
        ValueError: the property's length differs from the dataset's.
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


@DATA_SAMPLERS.register_module()
class LengthGroupedSampler(XtunerLengthGroupedSampler):
    """xtuner's LengthGroupedSampler plus a resume position (see the module docstring).

    Args:
        dataset: a dataset with `modality_length` (or a concatenation of such); the lengths
            are read with :func:`dataset_lengths` first, so a missing or mis-sized property
            is an error naming the dataset (xtuner would fail on an assert).
        per_device_batch_size: samples per rank grouped together (Sa2VA: batch size x
            accumulation steps).
        length_property: name of the lengths attribute (Sa2VA: 'modality_length').
        mega_batch_mult: mega-batch size in per-device batches; None = xtuner's rule,
            min(50, len // (4 * per_device_batch_size * world)), at least 1.
        seed: shared by all ranks; None = mmengine's synchronised random seed.
        round_up: every rank draws the same whole number of per-device batches.
    """

    def __init__(self, dataset: Dataset, per_device_batch_size: int,
                 length_property: str = "modality_length", mega_batch_mult: int | None = None,
                 seed: int | None = None, round_up: bool = True) -> None:
        # xtuner reads the lengths of a dataset, or of each part of one torch concatenation,
        # and asserts a list; dataset_lengths also reads nested and mmengine concatenations
        # and names a dataset without the property. xtuner uses the dataset for nothing else.
        lengths = _WithLengths(dataset, length_property, dataset_lengths(dataset, length_property))
        super().__init__(lengths, per_device_batch_size, length_property, mega_batch_mult,
                         seed, round_up)
        self.dataset = dataset
        self.start = 0

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        start, self.start = self.start, 0
        return iter(indices[start:])

    def __len__(self) -> int:
        return self.num_samples - self.start

    def set_resume_position(self, samples_seen: int) -> None:
        """Start the next pass after this rank's first `samples_seen` indices of the
        current epoch (resume mid-epoch without loading the skipped samples).

        Raises:
            ValueError: `samples_seen` outside [0, samples per rank].
        """
        if not 0 <= samples_seen <= self.num_samples:
            raise ValueError(f"samples_seen must be in [0, {self.num_samples}], got {samples_seen}")
        self.start = samples_seen


class _WithLengths:
    """A dataset's size and its lengths as a list, under the name xtuner reads."""

    def __init__(self, dataset: Dataset, length_property: str, lengths: list[int]) -> None:
        self.dataset = dataset
        setattr(self, length_property, lengths)

    def __len__(self) -> int:
        return len(self.dataset)
