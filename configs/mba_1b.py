# The paper's model: Sa2VA-1B + Mask-Biased Attention + TMC + boundary loss (Table 1, "Ours").
# `tools/dist_train.sh configs/mba_1b.py 4` trains it: schedule (AdamW 4e-5, wd 0.05,
# 1 epoch, 5% warm-up then cosine, bf16, ZeRO-2, batch 2 x 4 accumulation) and runtime
# (checkpoints, logging, MBA / aux-loss warm-up hooks) and the training data (RefCOCO/+/g,
# MeViS, ReVOS, Ref-YTVOS, LLaVA mix under `data_root`, see data/README.md) are the bases.
# Every top-level knob of the bases is live here and in configs copied from this one
# (`lr = 1e-4`, `max_epochs = 2`, `mba = dict(top_k=8)`, ...): configs/README.md.
_base_ = [
    './_base_/models/sa2va_mba_1b.py',
    './_base_/datasets/refer_seg_mix.py',
    './_base_/schedules/sa2va_1e.py',
    './_base_/default_runtime.py',
]
num_workers = 4           # data loader processes per GPU
val_data_root = '${data_root}'

train_dataloader = dict(
    batch_size='${batch_size}',
    num_workers='${num_workers}',
    persistent_workers=True,
    # Sa2VA groups samples of similar length (xtuner's LengthGroupedSampler) over the
    # samples of one optimizer step.
    sampler=dict(type='LengthGroupedSampler', length_property='modality_length',
                 per_device_batch_size='${batch_size * accumulative_counts}'),
    dataset='${train_dataset}',
    collate_fn='${collate_fn}',
)
