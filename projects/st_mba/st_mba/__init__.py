"""Spatio-temporal Mask-Biased Attention: importing this registers `SpatioTemporalMBA` in
mpr_cma's MODELS registry (configs load it with `custom_imports`)."""

from projects.st_mba.st_mba.attention import SpatioTemporalMBA
from projects.st_mba.st_mba.temporal import (
    TrackWindow,
    object_tokens,
    temporal_prior,
    track_windows,
)

__all__ = ["SpatioTemporalMBA", "TrackWindow", "object_tokens", "temporal_prior",
           "track_windows"]
