"""Resume without re-reading data (mpr_cma.engine.resume): a tiny mmengine run through
ResumableTrainLoop, checkpointed every iteration and resumed at iteration k, draws
exactly the batches the uninterrupted run drew at k + 1, k + 2, ..., and loads no sample
of the first k batches (the dataset counts its __getitem__ calls)."""

import mmengine.runner.loops as mmengine_loops
import pytest
import torch
from mmengine.dataset import DefaultSampler
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import DataLoader, Dataset

import mpr_cma.engine  # noqa: F401  (registers ResumableTrainLoop)
from mpr_cma.datasets.samplers import LengthGroupedSampler
from mpr_cma.engine.resume import resume_position, start_sampler_at

NUM_SAMPLES, BATCH, EPOCHS = 10, 2, 2
EPOCH_LENGTH = NUM_SAMPLES // BATCH
TOTAL = EPOCHS * EPOCH_LENGTH
SAMPLERS = {
    "length_grouped": dict(type="LengthGroupedSampler", per_device_batch_size=BATCH,
                           mega_batch_mult=1),
    "default": dict(type="DefaultSampler", shuffle=True),
}


# Every index read by a CountingDataset (mmengine deep-copies the dataset of a loader
# config, so the count lives outside it).
LOADED: list[int] = []


class CountingDataset(Dataset):
    """Sample i = {"inputs": [i], "index": i}; appends i to LOADED when read."""

    def __init__(self) -> None:
        self.modality_length = [(7 * i) % 5 + 1 for i in range(NUM_SAMPLES)]

    def __len__(self) -> int:
        return NUM_SAMPLES

    def __getitem__(self, i: int) -> dict:
        LOADED.append(i)
        return {"inputs": torch.tensor([float(i)]), "index": i}


class Recorder(BaseModel):
    """Records the indices of every training batch; a one-weight loss to step on."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))
        self.batches: list[list[int]] = []

    def forward(self, inputs, index, data_samples=None, mode="loss"):
        self.batches.append(list(index))
        return {"loss": (self.weight * torch.stack(inputs)).square().mean()}


def train(work_dir, name: str, sampler: str, resume_from=None,
          loop: str = "ResumableTrainLoop") -> tuple[list[list[int]], list[int]]:
    """Train; return the batches the model saw and the indices the dataset loaded."""
    dataset, model = CountingDataset(), Recorder()
    LOADED.clear()
    train_cfg = (dict(type=loop, max_epochs=EPOCHS) if loop == "ResumableTrainLoop"
                 else dict(type=loop, max_iters=TOTAL))
    runner = Runner(
        model=model, work_dir=str(work_dir), experiment_name=name,
        train_dataloader=dict(dataset=dataset, sampler=SAMPLERS[sampler], batch_size=BATCH,
                              num_workers=0, collate_fn=dict(type="pseudo_collate")),
        train_cfg=train_cfg,
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01)),
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1, by_epoch=False),
                           logger=dict(type="LoggerHook", interval=100)),
        randomness=dict(seed=3),
        resume=resume_from is not None,
        load_from=None if resume_from is None else str(resume_from),
        default_scope="mmengine",
    )
    runner.train()
    return model.batches, list(LOADED)


@pytest.fixture(autouse=True)
def no_epoch_sleep(monkeypatch):
    """mmengine sleeps 2 s at every epoch end; not needed for a test. mmengine's Runner
    loads its own checkpoints with torch.load's default, weights_only=True since torch
    2.6, which rejects its message hub: allowed here (the test wrote the files)."""
    monkeypatch.setattr(mmengine_loops.time, "sleep", lambda seconds: None)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    runs = {}
    for sampler in SAMPLERS:
        work_dir = tmp_path_factory.mktemp(f"full_{sampler}")
        mmengine_loops.time.sleep, sleep = (lambda seconds: None), mmengine_loops.time.sleep
        try:
            batches, loaded = train(work_dir, f"full_{sampler}", sampler)
        finally:
            mmengine_loops.time.sleep = sleep
        runs[sampler] = (work_dir, batches, loaded)
    return runs


@pytest.mark.parametrize("sampler", list(SAMPLERS))
@pytest.mark.parametrize("k", [3, EPOCH_LENGTH, EPOCH_LENGTH + 2])
def test_resume_draws_the_next_batches_and_loads_nothing_before(uninterrupted, tmp_path,
                                                                sampler, k):
    work_dir, full_batches, full_loaded = uninterrupted[sampler]
    assert len(full_batches) == TOTAL and len(full_loaded) == TOTAL * BATCH
    # the two epochs differ (the sampler reshuffles), so a wrong epoch would be seen
    assert full_batches[:EPOCH_LENGTH] != full_batches[EPOCH_LENGTH:]
    batches, loaded = train(tmp_path, f"resume_{sampler}_{k}", sampler,
                            resume_from=work_dir / f"iter_{k}.pth")
    assert batches == full_batches[k:]
    assert loaded == [i for batch in full_batches[k:] for i in batch]


def test_mmengine_replay_loads_the_trained_batches(uninterrupted, tmp_path):
    """The behaviour replaced: IterBasedTrainLoop reads the first k batches again."""
    work_dir, full_batches, _ = uninterrupted["default"]
    k = 3
    batches, loaded = train(tmp_path, "replay", "default",
                            resume_from=work_dir / f"iter_{k}.pth", loop="IterBasedTrainLoop")
    assert batches == full_batches[k:]
    assert len(loaded) == TOTAL * BATCH  # k batches loaded for nothing


def test_resume_position():
    assert resume_position(0, 5) == (0, 0)
    assert resume_position(7, 5) == (1, 2)
    assert resume_position(10, 5) == (2, 0)
    with pytest.raises(ValueError):
        resume_position(-1, 5)


@pytest.mark.parametrize("make", [
    lambda ds: LengthGroupedSampler(ds, per_device_batch_size=BATCH, seed=1),
    lambda ds: DefaultSampler(ds, shuffle=True, seed=1),
])
def test_start_sampler_at_skips_indices_once(make):
    dataset = CountingDataset()
    loader = DataLoader(dataset, batch_size=BATCH, sampler=make(dataset),
                        collate_fn=lambda batch: [s["index"] for s in batch])
    loader.sampler.set_epoch(1)
    epoch1 = list(loader)
    assert start_sampler_at(loader, 1, 2 * BATCH)
    assert list(loader) == epoch1[2:]
    assert list(loader) == epoch1  # later passes are whole again


def test_fractional_epochs_are_floored():
    """xtuner's loop hands 0.5 * 5 = 2.5 iterations to mmengine, which refuses a non-whole
    count; ResumableTrainLoop floors it, as the schedulers' epoch bounds are floored."""
    from types import SimpleNamespace

    from mpr_cma.engine.loops import ResumableTrainLoop

    loader = DataLoader(list(range(NUM_SAMPLES)), batch_size=BATCH)
    runner = SimpleNamespace(visualizer=SimpleNamespace(), _randomness_cfg={}, seed=0)
    assert ResumableTrainLoop(runner, loader, max_epochs=0.5).max_iters == 2
    assert ResumableTrainLoop(runner, loader, max_epochs=3).max_iters == 15
    assert ResumableTrainLoop(runner, loader, max_iters=4).max_iters == 4
    with pytest.raises(RuntimeError, match="Only one of"):
        ResumableTrainLoop(runner, loader, max_iters=4, max_epochs=1)
