# Sa2VA-1B's schedule (projects/llava_sam2/configs/sa2va_1b.py of bytedance/Sa2VA) with the
# paper's weight decay (section 4.1): AdamW lr 4e-5, betas (0.9, 0.999), weight decay 0.05,
# grad clip 1.0, 1 epoch, linear warm-up over the first 5% then cosine to 0, bf16,
# DeepSpeed ZeRO-2, 2 samples per GPU with 4 accumulation steps (Sa2VA's
# accumulative_counts = 4): 2 x 4 x 4 GPUs = 32 samples per optimizer step in the paper run.
# Every knob below is read through '${...}' references (configs/README.md), so a leaf's
# `max_epochs = 2` or `--cfg-options max_epochs=2` (or train_cfg.max_epochs=2) rescales
# the LR schedule and the MBA / aux-loss warm-up (WarmupHook, default_runtime.py) alike.
# Reads `val_interval` of default_runtime.py.
batch_size = 2            # per GPU (Sa2VA); also DeepSpeed's micro-batch
accumulative_counts = 4   # Sa2VA-1B: micro-batches per optimizer step
max_epochs = 1
lr = 4e-5
weight_decay = 0.05       # paper 4.1
warmup_ratio = 0.05       # fraction of the iterations: LR warm-up, MBA gate and aux losses

optim_wrapper = dict(
    type='DeepSpeedOptimWrapper',
    optimizer=dict(type='AdamW', lr='${lr}', betas=(0.9, 0.999),
                   weight_decay='${weight_decay}'))

param_scheduler = [
    # Sa2VA's start factor; by epoch fractions converted to iterations.
    dict(type='LinearLR', start_factor=1e-5, by_epoch=True, begin=0,
         end='${warmup_ratio * max_epochs}', convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=True,
         begin='${warmup_ratio * max_epochs}', end='${max_epochs}',
         convert_to_iter_based=True),
]

# Iteration-based loop over `max_epochs` epochs: xtuner's TrainLoop, as Sa2VA trains, so
# checkpoints and resume work at any iteration; ResumableTrainLoop (mpr_cma.engine.loops)
# only adds a resume that does not re-read the batches already trained on.
train_cfg = dict(type='ResumableTrainLoop', max_epochs='${max_epochs}',
                 val_interval='${max(val_interval, 1)}')

runner_type = 'FlexibleRunner'
strategy = dict(
    type='AtomicDeepSpeedStrategy',   # mpr_cma.engine: DeepSpeedStrategy + atomic checkpoints
    train_micro_batch_size_per_gpu='${batch_size}',
    gradient_accumulation_steps='${accumulative_counts}',
    gradient_clipping=1.0,
    bf16=dict(enabled=True),
    inputs_to_half=['data'],          # float tensors of the batch follow the model's dtype
    zero_optimization=dict(
        stage=2,
        allgather_partitions=True,
        allgather_bucket_size=int(2e8),
        overlap_comm=True,
        reduce_scatter=True,
        reduce_bucket_size=int(2e8),
        contiguous_gradients=True),
)
