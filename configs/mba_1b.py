# The paper's model: Sa2VA-1B + Mask-Biased Attention + TMC + boundary loss (Table 1, "Ours").
# `tools/dist_train.sh configs/mba_1b.py 4` trains it once the training issue (#4) adds the
# datasets, schedule (AdamW 4e-5, wd 0.05, 1 epoch, 5% warm-up then cosine, bf16, ZeRO-2)
# and runtime parts; today this file holds the model part only.
_base_ = ['./_base_/models/sa2va_mba_1b.py']
