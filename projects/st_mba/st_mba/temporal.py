"""Track windows and the two temporal quantities of spatio-temporal MBA (pure functions).

A grounding batch holds one row per (object, frame); rows with equal `track_index` are the
frames of one object, in frame order (`Sa2VAMBA.run_batch` and SAM-2's video key frames
produce them so). For each row the window is the rows of its own track at offsets
-r..r (r = (window - 1) // 2) without itself: neighbouring *rows* of the track, i.e. the
neighbouring sampled frames, whatever their time stamps. Near the ends of a track the
window is cut, never padded with another object's frames.
"""

from typing import NamedTuple

import torch
from torch import Tensor

POOLS = ("mean", "max")


class TrackWindow(NamedTuple):
    """Neighbours of each row within its track.

    Attributes:
        index: (B, W-1) int64 row index of each neighbour slot (the row itself where the
            slot is not valid, so gathers stay in range).
        valid: (B, W-1) bool, True where the slot holds a frame of the same track.
    """

    index: Tensor
    valid: Tensor


def track_windows(track_index: Tensor | None, num_rows: int, window: int,
                  device: torch.device | None = None) -> TrackWindow:
    """The temporal window of every row.

    Args:
        track_index: (B,) integer object id per row; None = every row its own track.
        num_rows: B (checked against `track_index`).
        window: odd window length W >= 1 in frames (1 = no neighbours).
        device: device of the result when `track_index` is None.

    Returns:
        TrackWindow with W - 1 slots, ordered by offset -r..-1, 1..r.

    Raises:
        ValueError: an even or non-positive window, or `track_index` not of shape (B,).
        TypeError: a floating-point `track_index`.
    """
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd number of frames >= 1, got {window}")
    if track_index is None:
        track_index = torch.arange(num_rows, device=device)
    if track_index.dtype.is_floating_point or track_index.dtype == torch.bool:
        raise TypeError(f"track_index must be an integer tensor, got dtype {track_index.dtype}")
    if tuple(track_index.shape) != (num_rows,):
        raise ValueError(f"track_index must be (B,) = ({num_rows},), got "
                         f"{tuple(track_index.shape)}")
    radius = (window - 1) // 2
    offsets = [d for d in range(-radius, radius + 1) if d != 0]
    rows = torch.arange(num_rows, device=track_index.device)
    if not offsets:
        empty = rows.new_zeros(num_rows, 0)
        return TrackWindow(empty, empty.bool())
    # Stable sort: rows of a track stay in their batch order (= frame order).
    order = torch.sort(track_index, stable=True).indices
    place = torch.empty_like(order)
    place[order] = rows
    shifted = place.unsqueeze(1) + torch.tensor(offsets, device=rows.device)  # (B, W-1)
    inside = (shifted >= 0) & (shifted < num_rows)
    neighbour = order[shifted.clamp(0, num_rows - 1)]
    valid = inside & (track_index[neighbour] == track_index.unsqueeze(1))
    index = torch.where(valid, neighbour, rows.unsqueeze(1))
    return TrackWindow(index, valid)


def temporal_prior(mask_logits: Tensor, window: TrackWindow, mix: float,
                   pool: str = "mean") -> Tensor:
    """First-pass logits pooled over the window: the input of the gate, eq. (3).

        L~_t = (1 - mix) * L_t + mix * pool_{s in W(t)} L_s      (rows with a neighbour)
        L~_t = L_t                                                (rows without one)

    Args:
        mask_logits: (B, 1, h, w) first-pass mask logits L (any float dtype).
        window: `track_windows` of the same B rows.
        mix: weight of the neighbours, in [0, 1] (0 = per-frame prior).
        pool: "mean" (average logit of the neighbours) or "max" (their largest logit: the
            object was here in some neighbouring frame).

    Returns:
        (B, 1, h, w) fp32 logits; a row without neighbours gets its own logits exactly.
    """
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    if not 0.0 <= mix <= 1.0:
        raise ValueError(f"mix must be in [0, 1], got {mix}")
    own = mask_logits.float()
    if window.valid.shape[1] == 0:
        return own
    neigh = own[:, 0][window.index]  # (B, W-1, h, w)
    valid = window.valid.view(*window.valid.shape, 1, 1)
    if pool == "mean":
        count = valid.sum(1).clamp(min=1)
        pooled = (neigh * valid).sum(1) / count
    else:
        pooled = neigh.masked_fill(~valid, float("-inf")).amax(1)
    has = window.valid.any(1).view(-1, 1, 1)
    mixed = (1.0 - mix) * own[:, 0] + mix * torch.where(has, pooled, own[:, 0])
    return torch.where(has, mixed, own[:, 0]).unsqueeze(1)


def object_tokens(visual: Tensor, gate: Tensor, window: TrackWindow,
                  eps: float = 1e-6) -> tuple[Tensor, Tensor]:
    """The object's features in the neighbouring frames: one token per window slot.

        z_s = sum_p G_s(p) F_v,s(p) / (sum_p G_s(p) + eps)

    (a gate-weighted average of frame s's features; G_s is frame s's own per-frame gate).

    Args:
        visual: (B, C, H, W) F_v of every row (any float dtype; pooled in fp32).
        gate: (B, 1, H, W) per-frame gate of every row, in [0, 1].
        window: `track_windows` of the rows.

    Returns:
        tokens (B, W-1, C) fp32 (zero where not valid) and valid (B, W-1) bool.
    """
    with torch.autocast(device_type=visual.device.type, enabled=False):
        weight = gate.float().flatten(1)  # (B, P)
        pooled = torch.einsum("bp,bcp->bc", weight, visual.float().flatten(2))
        pooled = pooled / (weight.sum(1, keepdim=True) + eps)
    tokens = pooled[window.index].masked_fill(~window.valid.unsqueeze(-1), 0.0)
    return tokens, window.valid

