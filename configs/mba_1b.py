# The paper's model: Sa2VA-1B + Mask-Biased Attention + TMC + boundary loss (Table 1, "Ours").
# `tools/dist_train.sh configs/mba_1b.py 4` trains it: schedule (AdamW 4e-5, wd 0.05,
# 1 epoch, 5% warm-up then cosine, bf16, ZeRO-2, batch 2 x 4 accumulation) and runtime
# (checkpoints, logging, MBA / aux-loss warm-up hooks) are below; the training data part
# ('./_base_/datasets/refer_seg_mix.py') joins the list when the datasets land (issue #4).
_base_ = [
    './_base_/models/sa2va_mba_1b.py',
    './_base_/schedules/sa2va_1e.py',
    './_base_/default_runtime.py',
]
