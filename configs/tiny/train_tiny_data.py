# Tiny Sa2VA-MBA trained on CPU through the real path AND the real data pipeline: the
# RefCOCO / MeViS / LLaVA readers of configs/_base_/datasets/refer_seg_tiny.py on a data
# root in the real layouts (`data_root = 'data_tiny'` relative to the working directory;
# tests write one, --data-root DIR moves it), collated by
# sa2va_collate, 2 processes, DeepSpeed ZeRO-2, gloo:
#   tools/dist_train.sh configs/tiny/train_tiny_data.py 2 --data-root DATA
_base_ = ['./train_tiny.py', '../_base_/datasets/refer_seg_tiny.py']

train_dataloader = dict(
    dataset='${train_dataset}',
    collate_fn='${collate_fn}',
    # Random sampling works on the real data too; the length-grouped sampler is the
    # recipe's choice for the 1B run.
    sampler=dict(type='DefaultSampler', shuffle=True),
)
