# Spatio-temporal MBA, temporal prior only: the gate pools the neighbouring frames' logits,
# the keys are the text tokens alone (no attention to neighbouring frames).
_base_ = ['./st_mba_1b.py']
mba = dict(track_attention=False)
