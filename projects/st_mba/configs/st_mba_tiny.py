# Spatio-temporal MBA on the tiny CPU model (configs/tiny/sa2va_mba_tiny.py): tests and the
# step-time / memory benchmark (projects/st_mba/tools/bench_st_mba.py).
_base_ = ['../../../configs/tiny/sa2va_mba_tiny.py']
custom_imports = dict(imports=['projects.st_mba.st_mba'], allow_failed_imports=False)

mba = dict(type='SpatioTemporalMBA', window=3, temporal_mix=0.5, temporal_pool='mean',
           track_attention=True)
