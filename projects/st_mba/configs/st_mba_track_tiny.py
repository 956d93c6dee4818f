# Tiny spatio-temporal MBA, track attention only (see st_mba_track_1b.py).
_base_ = ['./st_mba_tiny.py']
mba = dict(temporal_mix=0.0)
