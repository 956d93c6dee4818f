"""Gather per-object text from the LLM's last hidden states: [SEG] and expression tokens.

Every object of a sample has exactly one `[SEG]` token in the sample's `input_ids` (its
k-th `[SEG]` belongs to its k-th object, as in Sa2VA); its hidden state becomes the SAM-2
prompt. For MBA and TMC each object also needs text tokens F_t: the hidden states of its
referring expression (a token span given by the data pipeline), optionally followed by its
`[SEG]` hidden state (the paper leaves the choice open; knob `text_tokens`).
"""

from collections.abc import Sequence

import torch
from torch import Tensor

TEXT_TOKEN_CHOICES = ("expression+seg", "expression", "seg")


def seg_positions(input_ids: Tensor, seg_token_id: int, num_objects: Sequence[int]) -> list[Tensor]:
    """Positions of the `[SEG]` tokens of each sample, checked against its object count.

    Args:
        input_ids: (B, L) int64.
        seg_token_id: id of `[SEG]`.
        num_objects: objects per sample (O_i).

    Returns:
        B int64 tensors of shape (O_i,), positions in increasing order.

    Raises:
        ValueError: a sample holds a different number of `[SEG]` tokens than objects (the
            message names the sample and both counts).
    """
    if len(num_objects) != input_ids.shape[0]:
        raise ValueError(f"num_objects has {len(num_objects)} entries for a batch of "
                         f"{input_ids.shape[0]} samples")
    positions = []
    for i, expected in enumerate(num_objects):
        found = (input_ids[i] == seg_token_id).nonzero().flatten()
        if found.numel() != expected:
            raise ValueError(f"sample {i}: {found.numel()} [SEG] tokens in input_ids but "
                             f"{expected} objects with masks")
        positions.append(found)
    return positions


def gather_text_tokens(
    hidden: Tensor,
    seg_pos: list[Tensor],
    expression_spans: Sequence[Sequence[tuple[int, int]]] | None,
    mode: str = "expression+seg",
) -> tuple[Tensor, Tensor]:
    """Pad the text tokens of every object of the batch into one tensor.

    Args:
        hidden: (B, L, H) last hidden states of the LLM.
        seg_pos: per sample, (O_i,) positions of its `[SEG]` tokens (`seg_positions`).
        expression_spans: per sample, one (start, end) token span per object (end
            exclusive) of its referring expression in `input_ids`; None is allowed only
            with mode "seg".
        mode: "expression+seg", "expression" or "seg".

    Returns:
        tokens: (O, N, H) with O = sum O_i, N = the longest object's token count, zeros on
            padding; mask: (O, N) bool, True = real token.

    Raises:
        ValueError: unknown mode, missing spans, a span per object missing, or a span that
            is empty or outside the sequence.
    """
    if mode not in TEXT_TOKEN_CHOICES:
        raise ValueError(f"text_tokens must be one of {TEXT_TOKEN_CHOICES}, got {mode!r}")
    if mode != "seg" and expression_spans is None:
        raise ValueError(f"text_tokens={mode!r} needs `expression_spans` in the batch")
    length = hidden.shape[1]
    per_object: list[Tensor] = []
    for i, positions in enumerate(seg_pos):
        spans = expression_spans[i] if expression_spans is not None else None
        if spans is not None and len(spans) != positions.numel():
            raise ValueError(f"sample {i}: {len(spans)} expression spans for "
                             f"{positions.numel()} objects")
        for j, seg in enumerate(positions.tolist()):
            index = []
            if mode != "seg":
                start, end = (int(v) for v in spans[j])
                if not 0 <= start < end <= length:
                    raise ValueError(f"sample {i} object {j}: expression span ({start}, {end})"
                                     f" is empty or outside the sequence of length {length}")
                index = list(range(start, end))
            if mode != "expression":
                index.append(seg)
            per_object.append(hidden[i, index])
    if not per_object:
        return hidden.new_zeros(0, 1, hidden.shape[-1]), torch.zeros(
            0, 1, dtype=torch.bool, device=hidden.device)
    n = max(t.shape[0] for t in per_object)
    tokens = hidden.new_zeros(len(per_object), n, hidden.shape[-1])
    mask = torch.zeros(len(per_object), n, dtype=torch.bool, device=hidden.device)
    for k, t in enumerate(per_object):
        tokens[k, : t.shape[0]] = t
        mask[k, : t.shape[0]] = True
    return tokens, mask


def masked_mean(tokens: Tensor, mask: Tensor) -> Tensor:
    """Mean of the real tokens: (O, N, C), (O, N) bool -> (O, C) (zeros for no token)."""
    weights = mask.to(tokens.dtype).unsqueeze(-1)
    return (tokens * weights).sum(1) / weights.sum(1).clamp_min(1)
