# Tiny Sa2VA-MBA trained on CPU through the real path (FlexibleRunner, DeepSpeed ZeRO-2,
# bf16, gloo): `tools/dist_train.sh configs/tiny/train_tiny.py 2` runs 6 iterations
# (24 synthetic samples / (2 processes x batch 2)) with a checkpoint every 2.
# Precision on CPU: bf16 through DeepSpeed's `torch_autocast` (fp32 master weights, bf16
# matmuls). DeepSpeed's `bf16` (weights cast to bf16, the GPU recipe of the 1B config)
# fails on CPU inside SAM-2: its prompt encoder casts point coords to fp32
# (position_encoding.py `coords.to(torch.float)`) and CPU autocast neither casts that
# matmul nor LayerNorm's bf16 weights (CUDA autocast does).
# fp32 (exact-resume test): --cfg-options strategy.config.torch_autocast.enabled=False
# The synthetic dataset lives in the tests (tests/engine/fake_data.py) until the real
# refer-seg data configs replace it.
_base_ = [
    './sa2va_mba_tiny.py',
    '../_base_/schedules/sa2va_1e.py',
    '../_base_/default_runtime.py',
]
custom_imports = dict(imports=['tests.engine.fake_data'], allow_failed_imports=False)

train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='FakeReferDataset', num_samples=24, video_frames=2),
    collate_fn=dict(type='fake_refer_collate'),
)
# Two micro-batches per optimizer step; checkpoints must fall on optimizer steps.
strategy = dict(
    train_micro_batch_size_per_gpu=2,
    gradient_accumulation_steps=2,
    bf16=dict(enabled=False),
    config=dict(torch_autocast=dict(enabled=True, dtype='bfloat16')),
)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
# A third of the 6 iterations warms up (the 1B run: 5%), so the ramps are visible in logs.
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=False, begin=2, end=6),
]
custom_hooks = [
    dict(type='WarmupHook', mba_warmup_ratio=0.34, aux_warmup_ratio=0.34),
    dict(type='TrainStatsHook'),
]
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=2, max_keep_ckpts=3),
)
log_processor = dict(window_size=1)
randomness = dict(seed=0)
