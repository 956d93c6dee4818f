# Runtime of every training config: hooks, logging, environment, seeds. Periodic and final
# checkpoints go to the work dir through AtomicCheckpointHook (save-then-prune, atomic
# `last_checkpoint`); the warm-up hook ramps MBA's gamma and the auxiliary loss weights.
default_scope = 'mpr_cma'
save_steps = 1000          # Sa2VA
save_total_limit = 2       # Sa2VA: checkpoints kept (-1 = all)
log_interval = 10
use_tensorboard = False    # --cfg-options use_tensorboard=True adds the TensorBoard backend

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=log_interval, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=save_steps,
                    max_keep_ckpts=save_total_limit, save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
custom_hooks = [
    # Linear ramps over the first fraction of the iterations (paper 4.1: 5%).
    dict(type='WarmupHook', mba_warmup_ratio=0.05, aux_warmup_ratio=0.05),
    # gamma, warm-up scales, grad norm and throughput into the logs.
    dict(type='TrainStatsHook'),
]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='auto'),   # mpr_cma.engine.runner: nccl on GPU, gloo on CPU
)
visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
log_level = 'INFO'
log_processor = dict(by_epoch=False, window_size=log_interval)
load_from = None
resume = False
randomness = dict(seed=42, deterministic=False)
