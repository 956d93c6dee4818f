"""Iteration-based training loop sized in epochs (as xtuner's TrainLoop, which Sa2VA uses).

Counting iterations rather than epochs lets checkpoints and resume happen at any
iteration. On resume the sampler is started where the run stopped (mpr_cma.engine.resume)
instead of mmengine's replay, which loads every batch already trained on.
"""

from mmengine.registry import LOOPS
from mmengine.runner import IterBasedTrainLoop

from mpr_cma.engine.resume import install_fast_forward


@LOOPS.register_module()
class EpochsAsItersTrainLoop(IterBasedTrainLoop):
    """IterBasedTrainLoop with `max_iters = max_epochs * len(dataloader)` when given epochs.

    Args:
        runner: the runner. dataloader: the training dataloader or its config.
        max_epochs: training length in epochs (converted to iterations).
        max_iters: training length in iterations (exclusive with `max_epochs`).
        val_begin, val_interval, dynamic_intervals: as IterBasedTrainLoop.
    """

    def __init__(self, runner, dataloader, max_epochs: int | None = None,
                 max_iters: int | None = None, val_begin: int = 1, val_interval: int = 1000,
                 dynamic_intervals=None):
        if (max_epochs is None) == (max_iters is None):
            raise ValueError("give exactly one of max_epochs and max_iters")
        if max_epochs is not None:
            if isinstance(dataloader, dict):
                diff_rank_seed = runner._randomness_cfg.get("diff_rank_seed", False)
                dataloader = runner.build_dataloader(dataloader, seed=runner.seed,
                                                     diff_rank_seed=diff_rank_seed)
            max_iters = int(max_epochs * len(dataloader))
        super().__init__(runner, dataloader, max_iters, val_begin, val_interval,
                         dynamic_intervals)

    def run(self):
        """Train; a resumed loop starts its sampler at the resume iteration (no replay)."""
        install_fast_forward(self)
        return super().run()
