# The demo recipe with spatio-temporal MBA, track attention only.
_base_ = ['./st_mba_demo.py']
mba = dict(temporal_mix=0.0)
