# The demo recipe (configs/tiny/demo.py: the tiny model trained on the synthetic benchmark)
# with spatio-temporal MBA; the per-frame arm of the comparison is configs/tiny/demo.py
# itself (projects/st_mba/tools/compare_st_mba.py runs both).
#   tools/dist_train.sh projects/st_mba/configs/st_mba_demo.py 2 --data-root DATA
_base_ = ['../../../configs/tiny/demo.py']
custom_imports = dict(imports=['projects.st_mba.st_mba'], allow_failed_imports=False)

mba = dict(type='SpatioTemporalMBA', window=3, temporal_mix=0.5, temporal_pool='mean',
           track_attention=True)
