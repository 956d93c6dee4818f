"""Mask-Biased Attention (MBA), paper section 3.2, eqs. (1)-(4), and its FiLM variant.

MBA sits between the SAM-2 image embedding and the SAM-2 mask decoder. For each object
(one row of the batch) it lets every pixel of the visual feature map query the K most
relevant text tokens, then injects the retrieved text semantics only where SAM-2's own
first-pass mask logits say the object is:

    s_i    = MLP(t_i)                                      (1)  router score per token
    O_attn = MHA(Q = F_v, K = V = TopK(F_t))               (2)  pixels query text
    G      = sigmoid(M_logits / tau_gate)                  (3)  resized to the F_v grid
    F_v'   = F_v + gamma * (O_attn ⊙ G)                    (4)  gamma initialised to 0

Implementation notes (choices the paper leaves open are marked "ours" in PAPER.md):
- Text tokens are layer-normed, scored, and the K kept ones are multiplied by
  sigmoid(s_i): a hard top-k alone passes no gradient to the router. Padding tokens are
  never kept; with fewer than K real tokens all real tokens are kept.
- The attention is computed in a factorised but mathematically identical form. With only
  K (default 4) keys, projecting every pixel with the C x C query and output matrices
  would dominate the cost. Instead the query projection is folded into the keys
  (q_p . k = LN(x_p) . (W_q^T k) + b_q . k) and the output projection into the values
  (sum_k a_pk W_o v_k), so the per-pixel work is O(C * heads * K), not O(C^2).
- Text routing (router scores), key/value projections, the folded keys, the attention
  logits' per-key offsets, softmax and the gate are computed in fp32 whatever the input
  dtype, also inside an autocast region (autocast is switched off around them). The
  per-pixel tensors (normalised pixels, the pixel-by-key product, attention output,
  residual) stay in the dtype of `visual` (or autocast's, when on), which halves the
  activation memory in bf16 training; the output has the dtype of `visual`.
- A sample whose text is all padding gets its visual features back unchanged; so does
  every sample when gamma = 0, and every pixel where the gate is exactly 0.
- `warmup_scale` multiplies gamma; the training hook ramps it from 0 to 1 over the
  first iterations (residual warm-up, section 3.2). It is not saved in checkpoints.
"""

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mpr_cma.registry import MODELS


class RoutedTokens(NamedTuple):
    """Output of `TopKTextRouter`.

    Attributes:
        tokens: (B, K, C) kept tokens, scaled by sigmoid(score), zero where not valid.
        valid: (B, K) bool, True where the kept slot holds a real (non-padding) token.
        index: (B, K) int64, position of each kept token in the input sequence.
        scores: (B, N) fp32 router scores s_i of all tokens (padding included).
    """

    tokens: Tensor
    valid: Tensor
    index: Tensor
    scores: Tensor


class TopKTextRouter(nn.Module):
    """Eq. (1): a lightweight MLP scores each text token; the top K real tokens are kept.

    Args:
        dim: channel width C of the text tokens.
        top_k: number of tokens to keep (K). If larger than the number of real tokens,
            all real tokens are kept.
        hidden_ratio: hidden width of the MLP as a fraction of `dim` (ours: 0.5).
    """

    def __init__(self, dim: int, top_k: int = 4, hidden_ratio: float = 0.5):
        super().__init__()
        if top_k < 1:
            raise ValueError(f"TopKTextRouter: top_k must be >= 1, got {top_k}")
        hidden = max(1, int(round(dim * hidden_ratio)))
        self.top_k = top_k
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, text: Tensor, text_mask: Tensor) -> RoutedTokens:
        """Select and weight the top-K real tokens.

        Args:
            text: (B, N, C) text tokens, any float dtype (scored in fp32).
            text_mask: (B, N) bool, True = real token.

        Returns:
            RoutedTokens with K' = min(K, N) slots.
        """
        with _fp32(text.device):
            hidden = F.gelu(_linear_fp32(self.mlp[0], text))
            scores = _linear_fp32(self.mlp[2], hidden).squeeze(-1)  # (B, N) fp32
        k = min(self.top_k, text.shape[1])
        # Padding can never win: it is pushed to -inf before ranking. If a sample has
        # fewer than k real tokens, the extra slots hold padding and are marked invalid.
        ranked = scores.masked_fill(~text_mask, float("-inf"))
        index = ranked.topk(k, dim=1).indices  # (B, k)
        valid = text_mask.gather(1, index)
        weight = torch.sigmoid(scores.gather(1, index)) * valid  # (B, k), grad to router
        picked = text.gather(1, index.unsqueeze(-1).expand(-1, -1, text.shape[-1]))
        tokens = (picked.float() * weight.unsqueeze(-1)).masked_fill(~valid.unsqueeze(-1), 0)
        return RoutedTokens(tokens=tokens, valid=valid, index=index, scores=scores)


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def _fp32(device: torch.device):
    """A region where autocast is off, so fp32 operands give fp32 results (inside a bf16
    autocast, as the 1B config trains, F.linear / einsum would otherwise run in bf16)."""
    return torch.autocast(device_type=device.type, enabled=False)


def _linear_fp32(layer: nn.Linear, x: Tensor) -> Tensor:
    """`layer(x)` computed in fp32 whatever the dtypes of `x` and of the layer, and whether
    or not autocast is on."""
    bias = None if layer.bias is None else layer.bias.float()
    with _fp32(x.device):
        return F.linear(x.float(), layer.weight.float(), bias)


class _MaskGatedPixelToText(nn.Module):
    """Shared body of MBA and its FiLM variant: routing, pixel-to-text attention, gate.

    Subclasses define `_modulation(x, mixed)`, which turns the attention output into the
    residual that eq. (4) adds (before the gate and gamma), both channel-first (B, C, P)
    and (B, D, P), and `_value_heads()`, the linear map applied after the attention
    heads are concatenated (folded into the token values, see module docstring).

    `uses_tracks` (False here) is the protocol for temporal variants (e.g.
    `projects/st_mba`): a module that sets it True gets one more keyword argument from
    `SAM2Grounding.decode`, `track_index` (B,) int64, equal for the rows that are frames
    of one object (in frame order), or None when the caller knows no tracks.
    """

    uses_tracks = False

    def __init__(
        self,
        dim: int = 256,
        num_heads: int = 8,
        top_k: int | None = 4,
        tau_gate: float = 1.0,
        router_hidden_ratio: float = 0.5,
        attn_dropout: float = 0.0,
        use_mask_gate: bool = True,
    ):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        if tau_gate <= 0:
            raise ValueError(f"tau_gate must be > 0, got {tau_gate}")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.tau_gate = float(tau_gate)
        self.use_mask_gate = use_mask_gate
        self.attn_dropout = attn_dropout
        # top_k=None keeps every real token and builds no router (an ablation knob).
        self.router = TopKTextRouter(dim, top_k, router_hidden_ratio) if top_k else None
        self.norm_visual = nn.LayerNorm(dim)
        self.norm_text = nn.LayerNorm(dim)
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        # Eq. (4): learnable residual scale, initialised to 0 so training starts from
        # the unmodified SAM-2 features.
        self.gamma = nn.Parameter(torch.zeros(1))
        self.warmup_scale = 1.0

    def set_warmup_scale(self, scale: float) -> None:
        """Set the residual warm-up factor in [0, 1] that multiplies gamma."""
        if not 0.0 <= scale <= 1.0:
            raise ValueError(f"warmup scale must be in [0, 1], got {scale}")
        self.warmup_scale = float(scale)

    # ------------------------------------------------------------------ input checks
    def _check_inputs(self, visual, text, mask_logits, text_mask) -> Tensor:
        name = type(self).__name__
        if visual.dim() != 4 or visual.shape[1] != self.dim:
            raise ValueError(
                f"{name}: `visual` must be (B, C={self.dim}, H, W), got {_shape(visual)}"
            )
        b = visual.shape[0]
        if text.dim() != 3 or text.shape[0] != b or text.shape[2] != self.dim:
            raise ValueError(
                f"{name}: `text` must be (B={b}, N, C={self.dim}) to match `visual` "
                f"{_shape(visual)}, got {_shape(text)}"
            )
        if text.shape[1] == 0:
            raise ValueError(f"{name}: `text` has no tokens (N = 0): {_shape(text)}")
        if mask_logits.dim() == 3:
            mask_logits = mask_logits.unsqueeze(1)
        if mask_logits.dim() != 4 or mask_logits.shape[:2] != (b, 1):
            raise ValueError(
                f"{name}: `mask_logits` must be (B={b}, 1, h, w) or (B={b}, h, w) to match "
                f"`visual` {_shape(visual)}, got {_shape(mask_logits)}"
            )
        if text_mask is not None:
            if text_mask.dtype != torch.bool:
                raise TypeError(
                    f"{name}: `text_mask` must be a bool tensor (True = real token), "
                    f"got dtype {text_mask.dtype}"
                )
            if _shape(text_mask) != _shape(text)[:2]:
                raise ValueError(
                    f"{name}: `text_mask` must be (B, N) = {_shape(text)[:2]} to match "
                    f"`text` {_shape(text)}, got {_shape(text_mask)}"
                )
        return mask_logits

    # ------------------------------------------------------------------ pieces
    def mask_gate(self, mask_logits: Tensor, size: tuple[int, int]) -> Tensor:
        """Eq. (3): G = sigmoid(M_logits / tau_gate) on the (H, W) grid, fp32 (B, 1, H, W)."""
        logits = mask_logits.float()
        if _shape(logits)[-2:] != tuple(size):
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return torch.sigmoid(logits / self.tau_gate)

    def _route(self, text: Tensor, text_mask: Tensor) -> RoutedTokens:
        norm = self.norm_text
        text = F.layer_norm(text.float(), (self.dim,), norm.weight.float(), norm.bias.float(),
                            norm.eps)
        if self.router is not None:
            return self.router(text, text_mask)
        index = torch.arange(text.shape[1], device=text.device).expand(text.shape[0], -1)
        tokens = text.float().masked_fill(~text_mask.unsqueeze(-1), 0)
        scores = torch.zeros(text.shape[:2], device=text.device)
        return RoutedTokens(tokens=tokens, valid=text_mask, index=index, scores=scores)

    def _value_heads(self) -> tuple[Tensor, Tensor]:
        """Linear map applied after head concatenation: weight (D, C) and bias (D,)."""
        return self.out_proj.weight.float(), self.out_proj.bias.float()

    def _modulation(self, x: Tensor, mixed: Tensor) -> Tensor:
        raise NotImplementedError

    def _attend(self, x_norm: Tensor, routed: RoutedTokens) -> tuple[Tensor, Tensor]:
        """Pixels query the kept tokens (eq. 2), in the folded form.

        Args:
            x_norm: (B, P, C) layer-normed pixel features (dtype of `visual`), P = H * W.
            routed: the kept tokens, K slots.

        Returns:
            mixed: (B, D, P) attention output after the value heads, channel-first like
                the feature map, dtype of `x_norm`.
            probs: (B, P, heads, K) fp32 attention probabilities (0 on invalid slots).
        """
        b, k = routed.valid.shape
        h, d = self.num_heads, self.head_dim
        dtype = x_norm.dtype
        device = x_norm.device
        with _fp32(device):  # token-side work: K tokens, negligible cost, kept in fp32
            keys = _linear_fp32(self.k_proj, routed.tokens).view(b, k, h, d)
            values = _linear_fp32(self.v_proj, routed.tokens).view(b, k, h, d)
            w_q = self.q_proj.weight.float().view(h, d, self.dim)
            b_q = self.q_proj.bias.float().view(h, d)
            # Fold W_q into the keys, (B, C, h*K), and b_q . k into a per-key offset.
            keys_in_pixel_space = torch.einsum("hdc,bkhd->bchk", w_q, keys) / math.sqrt(d)
            key_offset = torch.einsum("hd,bkhd->bhk", b_q, keys) / math.sqrt(d)
        # The per-pixel product runs in the dtype of the pixels (and under autocast, if on).
        logits = torch.bmm(x_norm, keys_in_pixel_space.reshape(b, self.dim, h * k).to(dtype))
        with _fp32(device):
            logits = logits.view(b, -1, h, k).float() + key_offset.unsqueeze(1)
            # Invalid slots get the most negative finite logit (not -inf, so a row with no
            # valid slot stays finite) and are then zeroed explicitly.
            invalid = ~routed.valid.view(b, 1, 1, k)
            logits = logits.masked_fill(invalid, torch.finfo(logits.dtype).min)
            probs = logits.softmax(dim=-1).masked_fill(invalid, 0.0)
            if self.training and self.attn_dropout > 0:
                probs = F.dropout(probs, p=self.attn_dropout)
            # Fold the output heads into the values: slot k of head h as a D-vector,
            # (B, D, h*K).
            w_o, b_o = self._value_heads()
            w_o = w_o.view(w_o.shape[0], h, d)
            values_out = torch.einsum("bkhd,ehd->behk", values, w_o).reshape(b, -1, h * k)
        mixed = torch.bmm(values_out.to(dtype), probs.view(b, -1, h * k).transpose(1, 2).to(dtype))
        return mixed + b_o.to(dtype).view(1, -1, 1), probs

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        visual: Tensor,
        text: Tensor,
        mask_logits: Tensor,
        text_mask: Tensor | None = None,
        return_attention: bool = False,
    ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        """Modulate visual features with mask-gated text semantics, eq. (4).

        Args:
            visual: (B, C, H, W) SAM-2 image embedding, one row per object; fp32/bf16/fp16.
            text: (B, N, C) text tokens of each object (projected to C).
            mask_logits: (B, 1, h, w) or (B, h, w) first-pass SAM-2 mask logits of each
                object, any resolution (bilinearly resized to H x W).
            text_mask: (B, N) bool, True = real token; None = all tokens are real.
            return_attention: also return the attention maps (paper Fig. 5).

        Returns:
            (B, C, H, W) modulated features in the dtype of `visual`. With
            `return_attention`, also a dict with `attn` (B, heads, H, W, K) attention
            probabilities, `attn_gated` (same, times the gate), `gate` (B, 1, H, W),
            `token_index` (B, K), `token_valid` (B, K) and `router_scores` (B, N).
        """
        mask_logits = self._check_inputs(visual, text, mask_logits, text_mask)
        b, c, height, width = visual.shape
        if text_mask is None:
            text_mask = torch.ones(text.shape[:2], dtype=torch.bool, device=text.device)
        routed = self._route(text, text_mask)
        x = visual.flatten(2)  # (B, C, P), a view: all per-pixel maths stays channel-first
        norm = self.norm_visual
        x_norm = F.layer_norm(x.transpose(1, 2), (c,), norm.weight.to(x.dtype),
                              norm.bias.to(x.dtype), norm.eps)  # (B, P, C)
        mixed, probs = self._attend(x_norm, routed)
        if self.use_mask_gate:
            gate = self.mask_gate(mask_logits, (height, width))  # (B, 1, H, W)
        else:
            gate = torch.ones(b, 1, height, width, device=visual.device)
        # A sample with no real token has nothing to inject: its residual is exactly 0
        # (otherwise the output bias alone would leak into the features).
        has_text = routed.valid.any(dim=1).float().view(b, 1, 1)
        gate_flat = (gate.flatten(2) * has_text).to(x.dtype)  # (B, 1, P)
        scale = (self.gamma.float() * self.warmup_scale).to(x.dtype)
        residual = self._modulation(x, mixed) * (gate_flat * scale)
        out = visual + residual.view(b, c, height, width)
        if not return_attention:
            return out
        attn = probs.permute(0, 2, 1, 3).reshape(b, self.num_heads, height, width, -1)
        info = {
            "attn": attn,
            "attn_gated": attn * gate.view(b, 1, height, width, 1),
            "gate": gate,
            "token_index": routed.index,
            "token_valid": routed.valid,
            "router_scores": routed.scores,
        }
        return out, info


@MODELS.register_module()
class MaskBiasedAttention(_MaskGatedPixelToText):
    """Mask-Biased Attention, eqs. (1)-(4): F_v' = F_v + gamma * (MHA(F_v, TopK(F_t)) ⊙ G).

    Args:
        dim: channel width C of visual features and text tokens (256 for SAM-2).
        num_heads: attention heads (ours: 8).
        top_k: text tokens kept by the router (ours: 4); None keeps all real tokens and
            builds no router.
        tau_gate: temperature of the mask gate, eq. (3) (paper: 1.0).
        router_hidden_ratio: router MLP hidden width as a fraction of `dim` (ours: 0.5).
        attn_dropout: dropout on the attention probabilities during training (ours: 0).
        use_mask_gate: False replaces G by 1 (ungated cross-attention, for ablations and
            the Fig. 5 comparison).
    """

    def _modulation(self, x: Tensor, mixed: Tensor) -> Tensor:
        return mixed  # O_attn itself is the residual


@MODELS.register_module()
class MaskBiasedFiLM(_MaskGatedPixelToText):
    """Residual FiLM variant of Table 3, same routing, attention, gate and call signature.

    Instead of adding O_attn, the attention output predicts a per-pixel affine transform
    of the visual features, applied as a gated residual:

        (a, b) = Linear(O_attn),   F_v' = F_v + gamma * ((a ⊙ F_v + b) ⊙ G)

    The FiLM linear map is folded into the attended values like the output projection
    (it is linear in O_attn), so the cost per pixel stays O(C * heads * K).

    Args: as `MaskBiasedAttention`.
    """

    def __init__(self, dim: int = 256, **kwargs):
        super().__init__(dim=dim, **kwargs)
        self.film = nn.Linear(dim, 2 * dim)

    def _value_heads(self) -> tuple[Tensor, Tensor]:
        w_o, b_o = super()._value_heads()
        w_f, b_f = self.film.weight.float(), self.film.bias.float()
        return w_f @ w_o, w_f @ b_o + b_f  # film(out_proj(o)) as one (2C, C) map

    def _modulation(self, x: Tensor, mixed: Tensor) -> Tensor:
        scale, shift = mixed.split(self.dim, dim=1)
        return scale * x + shift
