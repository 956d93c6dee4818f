# Runtime of every training config: hooks, logging, environment, seeds, and the optional
# validation during training. Periodic and final checkpoints go to the work dir through
# AtomicCheckpointHook (save-then-prune, atomic `last_checkpoint`); the warm-up hook ramps
# MBA's gamma and the auxiliary loss weights over the schedule's `warmup_ratio`.
# Reads `warmup_ratio` of the schedule (configs/_base_/schedules/).
default_scope = 'mpr_cma'
save_steps = 1000          # Sa2VA: iterations between checkpoints
save_total_limit = 2       # Sa2VA: checkpoints kept (-1 = all)
log_interval = 10          # iterations between log lines (losses, lr, gamma, ...)
use_tensorboard = False    # True: also write TensorBoard event files (WORK_DIR/<time>/vis_data)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval='${log_interval}', log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval='${save_steps}',
                    max_keep_ckpts='${save_total_limit}', save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
custom_hooks = [
    # Linear ramps over the first fraction of the iterations (paper 4.1: 5%), the same
    # fraction as the LR warm-up.
    dict(type='WarmupHook', mba_warmup_ratio='${warmup_ratio}',
         aux_warmup_ratio='${warmup_ratio}'),
    # gamma, warm-up scales, grad norm and throughput into the logs.
    dict(type='TrainStatsHook'),
]

# Validation during training (mpr_cma.engine.validation): every `val_interval` iterations
# (and after the last one) the model predicts `val_items` items, spread evenly over each
# split of `val_splits` under `val_data_root` (layout of data/README.md), with the
# benchmark's predict path, and RefCOCO cIoU / gIoU and Ref-VOS J&F are logged with the
# losses (e.g. `val/refcoco_val/cIoU`). 0 = no validation (the paper configs).
val_interval = 0
val_data_root = 'data'
val_splits = [dict(dataset='refcoco', split='val'), dict(dataset='mevis_u', split='valid_u')]
val_items = 50             # per split; None = the whole split
val_answer = None          # None: greedy answers (the protocol); e.g. 'It is [SEG].' forces one
# Items per validation batch (per rank): the sentences of one image in a batch are predicted
# with one image encoding (mpr_cma.engine.validation.predict_items), the same masks as one
# by one.
val_batch_size = 4
# Video frames shown to the MLLM and prompted with its [SEG] at evaluation, the first ones
# (the rest are tracked by SAM-2's memory): the validation loop's and tools/test.py's
# (its --num-key-frames default). Sa2VA's predict_forward: the first min(5, T).
num_key_frames = 5
val_loader = dict(
    batch_size='${val_batch_size}', num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='refer_val_collate'),
    dataset=dict(type='ReferValDataset', data_root='${val_data_root}', splits='${val_splits}',
                 max_items='${val_items}'))
# mmengine builds a validation loop only when these three are set.
val_dataloader = '${val_loader if val_interval else None}'
val_cfg = ('${dict(type="ReferValLoop", answer=val_answer, num_key_frames=num_key_frames)'
           ' if val_interval else None}')
val_evaluator = '${dict(type="ReferSegMetric") if val_interval else None}'

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='auto'),   # mpr_cma.engine.runner: nccl on GPU, gloo on CPU
)
visualizer = dict(
    type='Visualizer',
    vis_backends='${[dict(type="LocalVisBackend")]'
                 ' + ([dict(type="TensorboardVisBackend")] if use_tensorboard else [])}')
log_level = 'INFO'
log_processor = dict(by_epoch=False, window_size='${log_interval}')
load_from = None
resume = False
randomness = dict(seed=42, deterministic=False)
