"""Resume an iteration-based run mid-epoch without loading the batches already trained on.

mmengine's IterBasedTrainLoop resumes at iteration k by calling `next()` on the training
data iterator k times: every sample already trained on is read, decoded and collated
again (hours of data loading for a late resume of the 1B run). The sampler alone decides
which samples come next, so the same position can be reached by telling the sampler
where it stands: epoch e = k // L and b = k % L batches into it (L = batches per epoch).

:class:`FastForwardIterator` replaces the loop's iterator on resume. mmengine's skip loop
then gets k cheap placeholders (it discards what it draws); at the first real `next()`,
after the `before_train_epoch` hooks (DistSamplerSeedHook resets the sampler's epoch to
0 there), it sets the sampler's epoch to e, starts it b batches in and opens a fresh data
loader iterator. Batches from then on are the ones an uninterrupted run draws at k + 1,
k + 2, ..., and later epochs follow as in that run.

Starting the sampler late:
* samplers with `set_resume_position(samples_seen)` (mpr_cma's LengthGroupedSampler) are
  told this rank's count of samples already drawn this epoch, b * batch_size;
* other samplers whose order depends only on their seed and epoch (mmengine's
  DefaultSampler, torch's SequentialSampler) are wrapped for one pass: their first
  b * batch_size indices are drawn and dropped (indices only, no sample is loaded);
* an infinite sampler (mmengine's InfiniteSampler) or a data loader without a batch
  sampler keeps mmengine's replay (a warning says so).

Exactness: the fresh iterator is opened with the global torch RNG forked, so the RNG state
restored from the checkpoint is the one the uninterrupted run had at iteration k (the
replay of mmengine, by contrast, advances it when the datasets draw random numbers).
With `num_workers > 0`, the iterator mmengine opened when it built the loop may already
have handed up to `prefetch_factor * num_workers` batches to its workers; those are the
only samples read before the resume point, however late it is.
"""

import itertools
import logging
from collections.abc import Iterator

import torch
from mmengine.dataset import InfiniteSampler
from mmengine.logging import print_log
from mmengine.runner.loops import _InfiniteDataloaderIterator
from torch.utils.data import DataLoader

__all__ = ["FastForwardIterator", "install_fast_forward", "resume_position", "start_sampler_at"]


def resume_position(iteration: int, epoch_length: int) -> tuple[int, int]:
    """(epoch, batches into that epoch) of a run that has trained `iteration` batches.

    Raises:
        ValueError: If `iteration` < 0 or `epoch_length` < 1.
    """
    if iteration < 0 or epoch_length < 1:
        raise ValueError(f"need iteration >= 0 and epoch_length >= 1, got {iteration} and "
                         f"{epoch_length}")
    return divmod(iteration, epoch_length)


class _SkipOnce:
    """A sampler whose next pass drops its first `skip` indices; later passes are whole."""

    def __init__(self, sampler, skip: int) -> None:
        self.sampler = sampler
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        skip, self.skip = self.skip, 0
        return itertools.islice(iter(self.sampler), skip, None)

    def __len__(self) -> int:
        return len(self.sampler) - self.skip

    def __getattr__(self, name: str):
        if name == "sampler":  # not set yet (unpickling in a worker): no recursion
            raise AttributeError(name)
        return getattr(self.sampler, name)


def start_sampler_at(dataloader: DataLoader, epoch: int, samples_seen: int) -> bool:
    """Make the next pass of `dataloader` start `samples_seen` samples into `epoch`.

    Args:
        dataloader: A torch DataLoader with a batch sampler (mmengine builds those).
        epoch: The epoch to set on the sampler (`set_epoch`), when it has one.
        samples_seen: This rank's samples already drawn in that epoch.

    Returns:
        False when the sampler cannot be started late (infinite sampler, no batch
        sampler); nothing is changed then.
    """
    batch_sampler = getattr(dataloader, "batch_sampler", None)
    sampler = getattr(batch_sampler, "sampler", None)
    if sampler is None or isinstance(sampler, InfiniteSampler):
        return False
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    if hasattr(sampler, "set_resume_position"):
        sampler.set_resume_position(samples_seen)
    elif samples_seen:
        batch_sampler.sampler = _SkipOnce(sampler, samples_seen)
    return True


class FastForwardIterator:
    """The training data iterator of a loop resumed at iteration `skip` (module docstring).

    The first `skip` calls of `next()` return None without touching the data (mmengine's
    skip loop discards them); the next one positions the sampler and opens the data.

    Args:
        dataloader: The loop's training DataLoader.
        skip: The iteration resumed at (batches already trained on).
    """

    def __init__(self, dataloader: DataLoader, skip: int) -> None:
        self._dataloader = dataloader
        self._placeholders = skip
        self._skip = skip
        self._iterator: _InfiniteDataloaderIterator | None = None

    def __iter__(self) -> "FastForwardIterator":
        return self

    def __next__(self):
        if self._placeholders:
            self._placeholders -= 1
            return None
        if self._iterator is None:
            self._iterator = self._open()
        return next(self._iterator)

    def _open(self) -> _InfiniteDataloaderIterator:
        epoch, batches = resume_position(self._skip, len(self._dataloader))
        batch_size = self._dataloader.batch_size
        if not start_sampler_at(self._dataloader, epoch, batches * batch_size):
            raise RuntimeError("the sampler cannot start mid-epoch")  # checked by install
        print_log(f"resume: sampler set to epoch {epoch}, batch {batches} ({self._skip} "
                  "batches already trained on are not loaded)", logger="current")
        # Opening an iterator draws a base seed from the global torch RNG; fork it so the
        # state restored from the checkpoint stays the one of the uninterrupted run.
        with torch.random.fork_rng(devices=[]):
            iterator = _InfiniteDataloaderIterator(self._dataloader)
        iterator._epoch = epoch  # so its next epoch is epoch + 1, as in the first run
        return iterator


def install_fast_forward(loop) -> bool:
    """Give a resumed IterBasedTrainLoop a :class:`FastForwardIterator` (before its run).

    Returns:
        True when installed; False when the loop starts at 0 or keeps mmengine's replay
        (infinite sampler, no batch sampler: a warning says why).
    """
    if loop._iter <= 0:
        return False
    sampler = getattr(getattr(loop.dataloader, "batch_sampler", None), "sampler", None)
    if (sampler is None or isinstance(sampler, InfiniteSampler)
            or loop.dataloader.batch_size is None):
        print_log(f"resume: {type(sampler).__name__} cannot start mid-epoch; mmengine "
                  f"replays the {loop._iter} batches already trained on",
                  logger="current", level=logging.WARNING)
        return False
    loop.dataloader_iterator = FastForwardIterator(loop.dataloader, loop._iter)
    return True
