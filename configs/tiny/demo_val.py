# configs/tiny/demo.py with validation during training: every `val_interval` iterations
# the model predicts `val_items` sentences of the synthetic RefCOCO val split and
# `val_items` expressions of MeViS valid_u; cIoU / gIoU and J&F are logged with the losses
# (WORK_DIR/<time>/vis_data/scalars.json, and TensorBoard with use_tensorboard = True).
#   tools/dist_train.sh configs/tiny/demo_val.py 2 --data-root work_dirs/demo/data
_base_ = ['./demo.py']
val_interval = 100
val_items = 8
use_tensorboard = True
