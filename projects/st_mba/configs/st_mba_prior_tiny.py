# Tiny spatio-temporal MBA, temporal prior only (see st_mba_prior_1b.py).
_base_ = ['./st_mba_tiny.py']
mba = dict(track_attention=False)
