# The demo recipe with spatio-temporal MBA, temporal prior only.
_base_ = ['./st_mba_demo.py']
mba = dict(track_attention=False)
