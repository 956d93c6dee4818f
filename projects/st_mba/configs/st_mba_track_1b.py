# Spatio-temporal MBA, track attention only: the per-frame prior (temporal_mix = 0), and the
# pixels attend to the object's features in the neighbouring frames.
_base_ = ['./st_mba_1b.py']
mba = dict(temporal_mix=0.0)
