"""Training engine: config loading, warm-up hooks, crash-safe checkpoints, the train and
validation loops and runner glue."""

from mpr_cma.engine.checkpoint import (
    AtomicCheckpointHook,
    find_latest_checkpoint,
    is_complete_checkpoint,
)
from mpr_cma.engine.hooks import TrainStatsHook, WarmupHook, linear_warmup_scale, unwrap_model
from mpr_cma.engine.loops import ResumableTrainLoop
from mpr_cma.engine.runner import build_runner, setup_config
from mpr_cma.engine.strategy import AtomicDeepSpeedStrategy
from mpr_cma.engine.validation import ReferValDataset, ReferValLoop, refer_val_collate

__all__ = [
    "AtomicCheckpointHook", "AtomicDeepSpeedStrategy", "ResumableTrainLoop",
    "ReferValDataset", "ReferValLoop", "TrainStatsHook", "WarmupHook",
    "build_runner", "find_latest_checkpoint", "is_complete_checkpoint",
    "linear_warmup_scale", "refer_val_collate", "setup_config", "unwrap_model",
]
