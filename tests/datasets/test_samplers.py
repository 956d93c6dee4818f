"""LengthGroupedSampler is xtuner's (Sa2VA's) sampler: the order follows xtuner's rules,
written out here from xtuner/dataset/samplers/length_grouped.py, and the resume position
only cuts the front of that order."""


import pytest
import torch
import xtuner.dataset.samplers.length_grouped as xtuner_sampler
from xtuner.dataset.samplers import LengthGroupedSampler as XtunerSampler

from mpr_cma.datasets.samplers import ConcatDataset, LengthGroupedSampler


class Lengths(torch.utils.data.Dataset):
    """A dataset that is only its `modality_length` (what the sampler reads)."""

    def __init__(self, lengths) -> None:
        self.modality_length = list(lengths)

    def __len__(self) -> int:
        return len(self.modality_length)

    def __getitem__(self, i):
        return i


def test_one_modality_order_is_xtuners_rule():
    """All samples with an image: randperm(seed + epoch) cut into groups of
    per_device_batch * mega_batch_mult, each sorted longest first, then the longest
    sample of all swapped with the first one."""
    lengths = [5, 9, 1, 7, 3, 8, 2, 6, 4, 10, 11, 12]
    sampler = LengthGroupedSampler(Lengths(lengths), per_device_batch_size=2,
                                   mega_batch_mult=2, seed=3)
    sampler.set_epoch(2)
    perm = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(5)).tolist()
    groups = [sorted(perm[i:i + 4], key=lambda j: -lengths[j]) for i in range(0, 12, 4)]
    heads = [lengths[g[0]] for g in groups]
    top = heads.index(max(heads))
    groups[0][0], groups[top][0] = groups[top][0], groups[0][0]
    assert list(sampler) == [i for g in groups for i in g]


def test_mixed_modalities_group_apart():
    """Image (> 0) and text-only (< 0) samples: every mega-batch but the last holds one
    kind only, sorted longest first; the last mixes the two kinds' remainders; the
    longest sample of all comes first (swapped with the head of its mega-batch, so the
    checks leave the heads out)."""
    lengths = [3, -4, 8, 6, -2, 7, -10, 1, 5, -6, 2, -1, 4, -3, 9, -5]
    sampler = LengthGroupedSampler(Lengths(lengths), per_device_batch_size=3,
                                   mega_batch_mult=1, seed=0, round_up=False)
    order = list(sampler)
    # 9 image samples -> groups of 3, 3, 3; 7 text samples -> 3, 3, 1: two groups of each
    # kind in the body, and the last group of each kind (3 + 1) is the final mega-batch.
    assert sorted(order) == list(range(16))
    assert lengths[order[0]] == -10
    groups = [order[k:k + 3] for k in range(0, 12, 3)]
    for group in groups:
        assert len({lengths[i] > 0 for i in group[1:]}) == 1
        tail = [abs(lengths[i]) for i in group[1:]]
        assert tail == sorted(tail, reverse=True)
    assert sorted(lengths[i] > 0 for g in groups for i in g[1:]) == [False] * 4 + [True] * 4
    last = [abs(lengths[i]) for i in order[12:]][1:]
    assert last == sorted(last, reverse=True)
    assert sum(lengths[i] > 0 for i in order[12:]) in (2, 3)  # 3 image + 1 text, head swapped


def test_round_up_counts_whole_batches_and_two_ranks_split(monkeypatch):
    """round_up: each rank draws ceil(n / world / per_device_batch) * per_device_batch
    indices of one order (the front repeated at the end), dealt round-robin; that order
    depends on the group size (per_device_batch * world * mega_batch_mult) only, so one
    rank with a twice larger per-device batch draws it whole."""
    lengths = list(range(1, 11))
    full = list(LengthGroupedSampler(Lengths(lengths), per_device_batch_size=4,
                                     mega_batch_mult=1, seed=1))
    assert len(full) == 12 and full[10:] == full[:2] and sorted(full[:10]) == list(range(10))
    for rank in (0, 1):
        monkeypatch.setattr(xtuner_sampler, "get_dist_info", lambda r=rank: (r, 2))
        sampler = LengthGroupedSampler(Lengths(lengths), per_device_batch_size=2,
                                       mega_batch_mult=1, seed=1)
        assert len(sampler) == 6 and list(sampler) == full[rank::2]


@pytest.mark.parametrize("concat", [
    lambda parts: ConcatDataset(parts),
    lambda parts: torch.utils.data.ConcatDataset(parts),
])
def test_same_order_as_xtuners_own_class(concat):
    """The subclass hands xtuner the lengths only; its order is xtuner's."""
    parts = [Lengths([4, 2, 7]), Lengths([-3, -8, -1, -5]), Lengths([6, 1, 9, 3, 2])]
    ours = LengthGroupedSampler(concat(parts), per_device_batch_size=2, seed=7)
    theirs = XtunerSampler(torch.utils.data.ConcatDataset(parts), per_device_batch_size=2,
                           length_property="modality_length", seed=7)
    for epoch in (0, 1):
        ours.set_epoch(epoch)
        theirs.set_epoch(epoch)
        assert list(ours) == list(theirs)


def test_resume_position_cuts_the_front_once():
    sampler = LengthGroupedSampler(Lengths(range(1, 9)), per_device_batch_size=2, seed=0)
    sampler.set_epoch(1)
    whole = list(sampler)
    sampler.set_resume_position(3)
    assert len(sampler) == 5 and list(sampler) == whole[3:]
    assert len(sampler) == 8 and list(sampler) == whole
    with pytest.raises(ValueError, match="samples_seen"):
        sampler.set_resume_position(9)


def test_a_dataset_without_lengths_is_named():
    class NoLengths(torch.utils.data.Dataset):
        def __len__(self):
            return 2

    with pytest.raises(AttributeError, match="NoLengths has no `modality_length`"):
        LengthGroupedSampler(NoLengths(), per_device_batch_size=1, seed=0)
