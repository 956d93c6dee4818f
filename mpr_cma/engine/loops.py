"""xtuner's TrainLoop (the loop Sa2VA trains with), resumed without replaying the data.

xtuner's `TrainLoop` is mmengine's IterBasedTrainLoop sized in epochs
(`max_iters = max_epochs * len(dataloader)`), so checkpoints and resume happen at any
iteration. What it lacks is a cheap resume: like IterBasedTrainLoop it resumes at
iteration k by drawing (and loading) the k batches already trained on. The subclass adds
only that: on resume the sampler is started where the run stopped (mpr_cma.engine.resume).
"""

from mmengine.registry import LOOPS
from xtuner.engine.runner import TrainLoop

from mpr_cma.engine.resume import install_fast_forward


@LOOPS.register_module()
class ResumableTrainLoop(TrainLoop):
    """xtuner's TrainLoop whose resume starts the sampler at the resume iteration.

    Args (xtuner's): runner; dataloader (a DataLoader or its config); exactly one of
    max_epochs (iterations = max_epochs * batches per epoch, which must be a whole number)
    and max_iters; val_begin, val_interval, dynamic_intervals as IterBasedTrainLoop.
    """

    def run(self):
        """Train; a resumed loop starts its sampler at the resume iteration (no replay)."""
        install_fast_forward(self)
        return super().run()
