# Spatio-temporal MBA over the paper's model (configs/mba_1b.py): the mask prior of every
# (object, frame) row pools the first-pass logits of the object's neighbouring frames, and
# its pixels also attend to the object's features in those frames (projects/st_mba/README.md).
# Everything else (data, schedule, losses, the Sa2VA video rule) is mba_1b.py's.
#   tools/dist_train.sh projects/st_mba/configs/st_mba_1b.py 4
_base_ = ['../../../configs/mba_1b.py']
custom_imports = dict(imports=['projects.st_mba.st_mba'], allow_failed_imports=False)

mba = dict(
    type='SpatioTemporalMBA',
    window=3,               # ours: frames of the object's track in the window (odd; 1 = MBA)
    temporal_mix=0.5,       # ours: weight of the neighbours' logits in the prior
    temporal_pool='mean',   # ours: 'mean' or 'max' over the neighbours' logits
    track_attention=True,   # ours: pixels also attend to the object's neighbouring features
)
