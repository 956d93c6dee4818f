"""The training objective of eq. (6) as one thin module returning named, weighted terms.

    L_total = 2.0 * BCE + 0.5 * Dice + lambda_tmc * L_tmc + lambda_bound * L_bound
              (+ the LLM text loss, added by the model)

The module returns a dict so the logs show every term; the caller sums it. The
auxiliary weights (TMC, boundary) are multiplied by `aux_warmup_scale`, which the
training hook ramps from 0 to 1 over the first 5% of iterations (paper section 4.1).
A term whose weight is 0 is neither computed nor returned, so the baseline and ablation
configs build no unused parameters.
"""

from torch import Tensor, nn

from mpr_cma.losses.boundary import boundary_loss
from mpr_cma.losses.segmentation import segmentation_losses
from mpr_cma.losses.tmc import TextMaskContrastiveHead
from mpr_cma.registry import MODELS

POOL_MASK_CHOICES = ("pred", "gt")


@MODELS.register_module()
class MPRCMALoss(nn.Module):
    """BCE + Dice (Sa2VA) + TMC + boundary, each weighted, returned as a dict.

    Args:
        bce_weight: weight of the point-sampled BCE (Sa2VA: 2.0).
        dice_weight: weight of the point-sampled Dice (Sa2VA: 0.5).
        num_points: points per mask for BCE/Dice (Sa2VA: 12,544); None = full maps.
        oversample_ratio: PointRend candidates per point (Sa2VA: 3.0).
        importance_sample_ratio: share of uncertain points (Sa2VA: 0.75).
        dice_eps: Dice smoothing (Sa2VA: 1.0).
        tmc_weight: lambda_tmc (paper: 0.1); 0 disables TMC.
        tmc_tau: tau_tmc (paper: 0.15).
        tmc_visual_dim, tmc_text_dim, tmc_embed_dim: widths of the TMC projection heads.
        tmc_pool_mask: "pred" pools F_v over sigmoid(predicted logits) (paper: the
            predicted foreground), "gt" over the ground-truth mask (ours: a knob).
        tmc_detach_pool_mask: stop the TMC gradient into the predicted mask used as
            pooling weights (ours: False, the mask is pulled towards text-consistent
            regions too).
        tmc_gather_across_ranks: negatives from every rank (ours: True).
        bound_weight: lambda_bound (paper: 0.05); 0 disables the boundary term.
        bound_max_dist: clip distance D of the boundary loss, in working pixels (ours: 16).
        bound_size: working resolution of the boundary loss; None = logits size.
    """

    def __init__(
        self,
        bce_weight: float = 2.0,
        dice_weight: float = 0.5,
        num_points: int | None = 12544,
        oversample_ratio: float = 3.0,
        importance_sample_ratio: float = 0.75,
        dice_eps: float = 1.0,
        tmc_weight: float = 0.1,
        tmc_tau: float = 0.15,
        tmc_visual_dim: int = 256,
        tmc_text_dim: int = 256,
        tmc_embed_dim: int = 256,
        tmc_pool_mask: str = "pred",
        tmc_detach_pool_mask: bool = False,
        tmc_gather_across_ranks: bool = True,
        bound_weight: float = 0.05,
        bound_max_dist: float = 16.0,
        bound_size: tuple[int, int] | None = None,
    ):
        super().__init__()
        if tmc_pool_mask not in POOL_MASK_CHOICES:
            raise ValueError(f"tmc_pool_mask must be one of {POOL_MASK_CHOICES}, got "
                             f"{tmc_pool_mask!r}")
        for name, value in (("bce_weight", bce_weight), ("dice_weight", dice_weight),
                            ("tmc_weight", tmc_weight), ("bound_weight", bound_weight)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        self.bce_weight = bce_weight
        self.dice_weight = dice_weight
        self.seg_kwargs = dict(
            num_points=num_points,
            oversample_ratio=oversample_ratio,
            importance_sample_ratio=importance_sample_ratio,
            dice_eps=dice_eps,
        )
        self.tmc_weight = tmc_weight
        self.tmc_pool_mask = tmc_pool_mask
        self.tmc_detach_pool_mask = tmc_detach_pool_mask
        self.tmc = (
            TextMaskContrastiveHead(
                tmc_visual_dim, tmc_text_dim, tmc_embed_dim, tmc_tau, tmc_gather_across_ranks
            )
            if tmc_weight > 0
            else None
        )
        self.bound_weight = bound_weight
        self.bound_max_dist = bound_max_dist
        self.bound_size = bound_size
        self.aux_warmup_scale = 1.0

    def set_aux_warmup_scale(self, scale: float) -> None:
        """Set the warm-up factor in [0, 1] of the auxiliary (TMC, boundary) weights."""
        if not 0.0 <= scale <= 1.0:
            raise ValueError(f"aux warm-up scale must be in [0, 1], got {scale}")
        self.aux_warmup_scale = float(scale)

    @property
    def uses_tmc(self) -> bool:
        return self.tmc is not None

    def forward(
        self,
        pred_logits: Tensor,
        gt_masks: Tensor,
        features: Tensor | None = None,
        text_embeds: Tensor | None = None,
        sentence_ids: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Weighted loss terms for N objects.

        Args:
            pred_logits: (N, H, W) final mask logits.
            gt_masks: (N, H', W') ground-truth masks.
            features: (N, C, h, w) features to pool for TMC (the MBA output); required
                when TMC is enabled.
            text_embeds: (N, D_t) sentence embeddings; required when TMC is enabled.
            sentence_ids: (N,) int64 ids; equal sentences are not TMC negatives.

        Returns:
            {"loss_mask", "loss_dice"[, "loss_tmc"][, "loss_bound"]}: weighted fp32 scalars.
        """
        seg = segmentation_losses(pred_logits, gt_masks, **self.seg_kwargs)
        losses = {
            "loss_mask": self.bce_weight * seg["loss_mask"],
            "loss_dice": self.dice_weight * seg["loss_dice"],
        }
        if self.tmc is not None:
            if features is None or text_embeds is None:
                raise ValueError("TMC is enabled (tmc_weight > 0): pass `features` and "
                                 "`text_embeds`")
            if self.tmc_pool_mask == "pred":
                pool = pred_logits.float().sigmoid()
                pool = pool.detach() if self.tmc_detach_pool_mask else pool
            else:
                pool = gt_masks.float()
            tmc = self.tmc(features, pool, text_embeds, sentence_ids)
            losses["loss_tmc"] = self.tmc_weight * self.aux_warmup_scale * tmc
        if self.bound_weight > 0:
            bound = boundary_loss(pred_logits, gt_masks, self.bound_max_dist, self.bound_size)
            losses["loss_bound"] = self.bound_weight * self.aux_warmup_scale * bound
        return losses
