"""RepeatedDataset: Sa2VA's `repeats=` (Sa2VABaseDataset: `len = int(real_len * repeats)`;
repeats >= 1 reads every sample that many times, a fraction reads a subset without
replacement) with the lengths LengthGroupedSampler groups by."""

from collections import Counter

import pytest
import torch

from mpr_cma.datasets.repeat import RepeatedDataset
from mpr_cma.datasets.samplers import ConcatDataset, LengthGroupedSampler, dataset_lengths
from mpr_cma.registry import DATASETS


class Numbers(torch.utils.data.Dataset):
    def __init__(self, n: int, offset: int = 0) -> None:
        self.items = list(range(offset, offset + n))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> int:
        return self.items[index]

    @property
    def modality_length(self) -> list[int]:
        return [10 + i for i in self.items]


def reads(dataset) -> Counter:
    return Counter(dataset[i] for i in range(len(dataset)))


def test_integer_repeats_read_every_sample_that_many_times():
    repeated = RepeatedDataset(Numbers(7), repeats=4)
    assert len(repeated) == 28
    assert reads(repeated) == Counter({i: 4 for i in range(7)})
    assert repeated.modality_length == [10 + repeated[i] for i in range(28)]


@pytest.mark.parametrize(("n", "repeats"), [(10, 0.2), (10, 0.55), (7, 2.5)])
def test_fractional_repeats_read_int_n_times_repeats_samples(n, repeats):
    repeated = RepeatedDataset(Numbers(n), repeats=repeats)
    assert len(repeated) == int(n * repeats)
    counts = reads(repeated)
    assert set(counts) <= set(range(n))
    whole, extra = int(repeats), len(repeated) - int(repeats) * n
    # every sample `whole` times, plus `extra` distinct ones (no replacement) once more
    assert sorted(counts[i] for i in range(n)) == [whole] * (n - extra) + [whole + 1] * extra


def test_the_fractional_subset_is_fixed_by_its_seed():
    a = [RepeatedDataset(Numbers(50), 0.3, subset_seed=1)[i] for i in range(15)]
    b = [RepeatedDataset(Numbers(50), 0.3, subset_seed=1)[i] for i in range(15)]
    c = [RepeatedDataset(Numbers(50), 0.3, subset_seed=2)[i] for i in range(15)]
    assert a == b != c


@pytest.mark.parametrize("repeats", [0, -1, True, "5", None])
def test_bad_repeats_are_refused(repeats):
    with pytest.raises(ValueError, match="repeats must be a positive number"):
        RepeatedDataset(Numbers(3), repeats=repeats)


def test_a_fraction_that_selects_nothing_is_refused():
    with pytest.raises(ValueError, match="Numbers.*3 samples.*selects no sample"):
        RepeatedDataset(Numbers(3), repeats=0.1)


def test_concatenation_and_length_grouped_sampler_see_the_repeats():
    mix = ConcatDataset([RepeatedDataset(Numbers(3), 5), RepeatedDataset(Numbers(4, 100), 2)])
    assert len(mix) == 15 + 8
    lengths = dataset_lengths(mix)
    assert lengths == [10 + mix[i] for i in range(len(mix))]
    sampler = LengthGroupedSampler(mix, per_device_batch_size=1, seed=0)  # 23: no round-up
    drawn = Counter(mix[i] for i in sampler)
    assert drawn == Counter({**{i: 5 for i in range(3)}, **{100 + i: 2 for i in range(4)}})


def test_built_from_the_registry_with_a_dataset_config():
    DATASETS.register_module(name="RepeatTestNumbers", module=Numbers, force=True)
    repeated = DATASETS.build(dict(type="RepeatedDataset", repeats=3,
                                   dataset=dict(type="RepeatTestNumbers", n=2)))
    assert reads(repeated) == Counter({0: 3, 1: 3})
