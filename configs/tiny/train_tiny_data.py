# Tiny Sa2VA-MBA trained on CPU through the real path AND the real data pipeline: the
# RefCOCO / MeViS / LLaVA readers of configs/tiny/data_tiny.py on a data root in the real
# layouts (`data_tiny/` relative to the working directory; tests write one), collated by
# sa2va_collate, 2 processes, DeepSpeed ZeRO-2, gloo:
#   tools/dist_train.sh configs/tiny/train_tiny_data.py 2
_base_ = ['./train_tiny.py', './data_tiny.py']

custom_imports = dict(imports=[], allow_failed_imports=False)
train_dataloader = dict(
    dataset=dict(_delete_=True, type='ConcatDataset',
                 datasets={{_base_.train_dataset.datasets}}),
    collate_fn={{_base_.collate_fn}},
    # Random sampling works on the real data too; the length-grouped sampler is the
    # recipe's choice for the 1B run.
    sampler=dict(type='DefaultSampler', shuffle=True),
)
