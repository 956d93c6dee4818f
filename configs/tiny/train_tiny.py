# Tiny Sa2VA-MBA trained on CPU through the real path (FlexibleRunner, DeepSpeed ZeRO-2,
# bf16, gloo): `tools/dist_train.sh configs/tiny/train_tiny.py 2` runs 6 iterations
# (24 random samples / (2 processes x batch 2)) with a checkpoint every 2.
# Precision on CPU: bf16 through DeepSpeed's `torch_autocast` (fp32 master weights, bf16
# matmuls). DeepSpeed's `bf16` (weights cast to bf16, the GPU recipe of the 1B config)
# fails on CPU inside SAM-2: its prompt encoder casts point coords to fp32
# (position_encoding.py `coords.to(torch.float)`) and CPU autocast neither casts that
# matmul nor LayerNorm's bf16 weights (CUDA autocast does).
# fp32 (exact-resume test): --cfg-options strategy.config.torch_autocast.enabled=False
# The data: mpr_cma.datasets.fake_refer (random tiles and box masks, real conversations).
_base_ = [
    './sa2va_mba_tiny.py',
    '../_base_/schedules/sa2va_1e.py',
    '../_base_/default_runtime.py',
]
custom_imports = dict(imports=['mpr_cma.datasets.fake_refer'], allow_failed_imports=False)

batch_size = 2
accumulative_counts = 2    # two micro-batches per optimizer step
lr = 1e-3
# A third of the 6 iterations warms up (the 1B run: 5%), so the ramps are visible in logs.
warmup_ratio = 0.34
log_interval = 1
save_steps = 2             # checkpoints must fall on optimizer steps
save_total_limit = 3

train_dataloader = dict(
    batch_size='${batch_size}',
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='FakeReferDataset', num_samples=24, video_frames=2),
    collate_fn=dict(type='sa2va_collate'),
)
# CPU precision: fp32 master weights with bf16 autocast (see above).
strategy = dict(
    bf16=dict(enabled=False),
    config=dict(torch_autocast=dict(enabled=True, dtype='bfloat16')),
)
# Warm-up from 10% of the lr (Sa2VA: 1e-5 of it, too slow to see in 6 iterations).
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0,
         end='${warmup_ratio * max_epochs}', convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=True,
         begin='${warmup_ratio * max_epochs}', end='${max_epochs}',
         convert_to_iter_based=True),
]
randomness = dict(seed=0)
