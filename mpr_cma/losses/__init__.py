"""Losses: pure functions (fp32 inside, shapes documented) and one combining module.

- segmentation: sigmoid BCE + Dice on importance-sampled points (Sa2VA).
- tmc: Text-Mask Contrastive loss, symmetric InfoNCE (eq. 5).
- boundary: distance-weighted boundary loss (section 3.3; the form is documented there).
- objective: `MPRCMALoss`, the weighted dict of eq. (6).
"""

from mpr_cma.losses.boundary import boundary_loss, signed_distance_map
from mpr_cma.losses.objective import MPRCMALoss
from mpr_cma.losses.segmentation import (
    dice_loss,
    point_sample,
    sample_uncertain_points,
    segmentation_losses,
    sigmoid_bce_loss,
)
from mpr_cma.losses.tmc import (
    TextMaskContrastiveHead,
    masked_average_pool,
    sentence_ids_from_texts,
    symmetric_info_nce,
)

__all__ = [
    "MPRCMALoss",
    "TextMaskContrastiveHead",
    "boundary_loss",
    "dice_loss",
    "masked_average_pool",
    "point_sample",
    "sample_uncertain_points",
    "segmentation_losses",
    "sentence_ids_from_texts",
    "signed_distance_map",
    "sigmoid_bce_loss",
    "symmetric_info_nce",
]
