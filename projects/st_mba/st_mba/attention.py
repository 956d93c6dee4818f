"""Spatio-temporal Mask-Biased Attention: MBA whose mask prior and keys span a track window.

Per-frame MBA (paper eqs. 2-4, `mpr_cma.models.MaskBiasedAttention`) gates frame t with
frame t's own first-pass logits. Here a row's window W(t) is the rows of the same object
at neighbouring (sampled) frames (`temporal.track_windows`), and two terms use it:

    L~_t    = (1 - mix) L_t + mix * pool_{s in W(t)} L_s                 temporal prior
    G~_t    = sigmoid(L~_t / tau_gate)                                    gate, eq. (3)
    O_text  = MHA(Q = F_v,t, K = V = TopK(F_t))                           eq. (2), as MBA
    z_s     = sum_p G_s(p) F_v,s(p) / sum_p G_s(p),  s in W(t)            object tokens
    O_track = MHA'(Q = F_v,t, K = V = {z_s})                              track attention
    F_v,t'  = F_v,t + gamma (O_text ⊙ G~_t) + gamma_track (O_track ⊙ G~_t)

MHA' has its own projections and its own residual scale gamma_track (initialised to 0,
ramped by the same warm-up): it is a `MaskBiasedAttention` without router whose "text"
is the object tokens. Exactness: with window = 1, or with mix = 0 and gamma_track = 0, or
for a row without neighbours (an image, a one-frame track), the output equals per-frame
MBA with the same weights bit for bit (the tests check it); with gamma = gamma_track = 0
it is F_v.
"""

from torch import Tensor

from mpr_cma.models import MaskBiasedAttention
from mpr_cma.registry import MODELS
from projects.st_mba.st_mba.temporal import (
    POOLS,
    object_tokens,
    temporal_prior,
    track_windows,
)


@MODELS.register_module()
class SpatioTemporalMBA(MaskBiasedAttention):
    """MBA with a temporal prior and attention to the object's neighbouring frames.

    Args:
        dim, num_heads, top_k, tau_gate, router_hidden_ratio, attn_dropout,
            use_mask_gate: as `MaskBiasedAttention` (its eqs. 1-4 are unchanged).
        window: odd temporal window in frames of the track (ours: 3); 1 = per-frame MBA
            (no temporal parameters are built).
        temporal_mix: weight of the neighbours' logits in the prior (ours: 0.5); 0 = the
            per-frame prior.
        temporal_pool: "mean" (ours) or "max" over the neighbours' logits.
        track_attention: build the attention of pixels to the object tokens of the
            neighbouring frames (ours: True); False = temporal prior only.
    """

    uses_tracks = True

    def __init__(self, dim: int = 256, window: int = 3, temporal_mix: float = 0.5,
                 temporal_pool: str = "mean", track_attention: bool = True, **mba_kwargs):
        super().__init__(dim=dim, **mba_kwargs)
        if window < 1 or window % 2 == 0:
            raise ValueError(f"SpatioTemporalMBA: window must be an odd number of frames "
                             f">= 1, got {window}")
        if not 0.0 <= temporal_mix <= 1.0:
            raise ValueError(f"SpatioTemporalMBA: temporal_mix must be in [0, 1], got "
                             f"{temporal_mix}")
        if temporal_pool not in POOLS:
            raise ValueError(f"SpatioTemporalMBA: temporal_pool must be one of {POOLS}, got "
                             f"{temporal_pool!r}")
        self.window = int(window)
        self.temporal_mix = float(temporal_mix)
        self.temporal_pool = temporal_pool
        self.track_attn = None
        if track_attention and window > 1:
            # Keys are the W - 1 object tokens: no router (top_k=None), same gate.
            self.track_attn = MaskBiasedAttention(
                dim=dim, num_heads=self.num_heads, top_k=None, tau_gate=self.tau_gate,
                attn_dropout=self.attn_dropout, use_mask_gate=self.use_mask_gate)

    def set_warmup_scale(self, scale: float) -> None:
        """Residual warm-up of both gammas (the hook also reaches the inner module)."""
        super().set_warmup_scale(scale)
        if self.track_attn is not None:
            self.track_attn.set_warmup_scale(scale)

    def forward(self, visual: Tensor, text: Tensor, mask_logits: Tensor,
                text_mask: Tensor | None = None, return_attention: bool = False,
                track_index: Tensor | None = None) -> Tensor | tuple[Tensor, dict]:
        """Modulate every row's features with its track's prior and neighbours.

        Args:
            visual, text, mask_logits, text_mask, return_attention: as
                `MaskBiasedAttention.forward` (B rows, one per (object, frame)).
            track_index: (B,) int64, equal for the rows that are frames of one object, in
                frame order; None = every row its own track (per-frame MBA).

        Returns:
            (B, C, H, W) in the dtype of `visual`; with `return_attention`, MBA's info dict
            plus "prior_logits" (B, 1, h, w) L~ and, with track attention, "track_attn"
            (B, heads, H, W, W-1) and "track_valid" (B, W-1).
        """
        if self.window == 1:
            return super().forward(visual, text, mask_logits, text_mask, return_attention)
        mask_logits = self._check_inputs(visual, text, mask_logits, text_mask)
        window = track_windows(track_index, visual.shape[0], self.window, visual.device)
        prior = temporal_prior(mask_logits, window, self.temporal_mix, self.temporal_pool)
        out = super().forward(visual, text, prior, text_mask, return_attention)
        info = None
        if return_attention:
            out, info = out
            info["prior_logits"] = prior
        if self.track_attn is not None:
            own_gate = self.mask_gate(mask_logits, tuple(visual.shape[-2:]))
            tokens, valid = object_tokens(visual, own_gate, window)
            # MaskBiasedAttention returns F_v + residual; a row without a valid neighbour
            # gets F_v back exactly, so its residual below is exactly 0.
            tracked = self.track_attn(visual, tokens, prior, valid,
                                      return_attention=return_attention)
            if return_attention:
                tracked, track_info = tracked
                info.update(track_attn=track_info["attn"], track_valid=valid)
            out = out + (tracked - visual)
        return out if info is None else (out, info)
