"""xtuner's TrainLoop (the loop Sa2VA trains with), resumed without replaying the data.

xtuner's `TrainLoop` is mmengine's IterBasedTrainLoop sized in epochs
(`max_iters = max_epochs * len(dataloader)`), so checkpoints and resume happen at any
iteration. The subclass adds two things:
- a cheap resume: like IterBasedTrainLoop, xtuner's loop resumes at iteration k by drawing
  (and loading) the k batches already trained on; here the sampler is started where the
  run stopped (mpr_cma.engine.resume);
- fractional epochs: xtuner hands `max_epochs * len(dataloader)` over unrounded, so e.g.
  0.5 epochs of 7 batches fails mmengine's integer check; here it is floored, as the
  schedulers' `convert_to_iter_based` bounds are (`scripts/run_ablation.py --epochs` takes
  any float). Whole products are unchanged.
"""

from mmengine.registry import LOOPS
from xtuner.engine.runner import TrainLoop

from mpr_cma.engine.resume import install_fast_forward


@LOOPS.register_module()
class ResumableTrainLoop(TrainLoop):
    """xtuner's TrainLoop whose resume starts the sampler at the resume iteration.

    Args (xtuner's): runner; dataloader (a DataLoader or its config); exactly one of
    max_epochs (iterations = floor(max_epochs * batches per epoch)) and max_iters;
    val_begin, val_interval, dynamic_intervals as IterBasedTrainLoop.
    """

    def __init__(self, runner, dataloader, max_iters=None, max_epochs=None, **kwargs):
        if max_epochs is not None and max_iters is None:
            if isinstance(dataloader, dict):  # built once here, as xtuner builds it
                diff_rank_seed = runner._randomness_cfg.get("diff_rank_seed", False)
                dataloader = runner.build_dataloader(dataloader, seed=runner.seed,
                                                     diff_rank_seed=diff_rank_seed)
            max_iters, max_epochs = int(max_epochs * len(dataloader)), None
        super().__init__(runner, dataloader, max_iters=max_iters, max_epochs=max_epochs,
                         **kwargs)

    def run(self):
        """Train; a resumed loop starts its sampler at the resume iteration (no replay)."""
        install_fast_forward(self)
        return super().run()
