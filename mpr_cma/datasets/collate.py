"""Collate Sa2VA-style samples (image, video and chat mixed) into the batch of `Sa2VAMBA`.

A sample (from `RefCOCODataset`, `RefVOSDataset`, `LLaVADataset`) is a dict:
    input_ids (L,) int64; labels (L,) int64;
    pixel_values (T, 3, s, s) MLLM tiles and image_flags (T,) (a chat sample without an image
        has one dummy tile with flag 0);
    g_pixel_values (F, 3, S, S), masks (O, F, H, W) bool, expression_spans [O x (start, end)],
        sentence_ids (O,) int64, sentences [O str] - only samples with masks;
    meta: dict naming the sample's source (logs, debugging).

The batch follows the contract of `mpr_cma.models.sa2va` (module docstring): every per-sample
list has one entry per sample, so `_row_index` zips objects with frames sample by sample; a
sample without masks contributes O_i = 0 objects and F_i = 0 SAM-2 frames (empty tensors), so
mixed image + video + chat batches need no change to the model.
"""

from collections.abc import Sequence

import torch

from mpr_cma.models.mllm.template import IGNORE_INDEX
from mpr_cma.registry import FUNCTIONS


def _pad(seqs: Sequence[torch.Tensor], value: int) -> torch.Tensor:
    out = torch.full((len(seqs), max(s.numel() for s in seqs)), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : s.numel()] = s
    return out


def _tiles(instances: Sequence[dict]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """All real tiles in sample order, or one dummy tile (flag 0) when there is none."""
    with_tiles = [x for x in instances if x.get("pixel_values") is not None]
    if not with_tiles:
        return None, None
    flags = [x.get("image_flags", torch.ones(x["pixel_values"].shape[0], dtype=torch.long))
             for x in with_tiles]
    real = [x["pixel_values"][f == 1] for x, f in zip(with_tiles, flags, strict=True)]
    if sum(r.shape[0] for r in real):
        pixels = torch.cat(real)
        return pixels, torch.ones(pixels.shape[0], dtype=torch.long)
    # Text-only batch: one dummy tile keeps the vision projector in the graph (InternVL).
    return with_tiles[0]["pixel_values"][:1], torch.zeros(1, dtype=torch.long)


@FUNCTIONS.register_module()
def sa2va_collate(instances: Sequence[dict], pad_token_id: int = 0) -> dict:
    """Batch samples for `Sa2VAMBA` (mmengine's `data_batch`: {"data", "data_samples"}).

    Args:
        instances: samples (see the module docstring).
        pad_token_id: id written into the padding of input_ids; any id other than `[SEG]`
            and `<IMG_CONTEXT>` works (padding is masked out and never supervised). Sa2VA
            pads with 0.

    Returns:
        {"data": batch, "data_samples": None}; batch holds input_ids, labels (-100 padded),
        attention_mask (B, L) int64 (1 = real token, right padding), pixel_values (T, 3, s,
        s) or None, image_flags (T,) or None, and B-long lists g_pixel_values (F_i, 3, S, S)
        (None when no sample has SAM-2 frames), masks (O_i, F_i, H_i, W_i) bool,
        expression_spans, sentence_ids (O_i,), sentences; plus "meta" (B dicts).
    """
    if not instances:
        raise ValueError("cannot collate an empty batch")
    ids = [x["input_ids"] for x in instances]
    input_ids = _pad(ids, pad_token_id)
    labels = _pad([x["labels"] for x in instances], IGNORE_INDEX)
    attention = torch.zeros_like(input_ids)
    for i, s in enumerate(ids):
        attention[i, : s.numel()] = 1
    pixel_values, image_flags = _tiles(instances)
    grounded = [x for x in instances if x.get("masks") is not None]
    g_pixel_values = masks = None
    if grounded:
        size = grounded[0]["g_pixel_values"].shape[-1]
        empty = torch.zeros(0, 3, size, size)
        g_pixel_values = [x["g_pixel_values"] if x.get("masks") is not None else empty
                          for x in instances]
    masks = [x["masks"] if x.get("masks") is not None
             else torch.zeros(0, 0, 1, 1, dtype=torch.bool) for x in instances]
    return {"data": {
        "input_ids": input_ids,
        "labels": labels,
        "attention_mask": attention,
        "pixel_values": pixel_values,
        "image_flags": image_flags,
        "g_pixel_values": g_pixel_values,
        "masks": masks,
        "expression_spans": [list(x.get("expression_spans", [])) for x in instances],
        "sentence_ids": [x.get("sentence_ids", torch.zeros(0, dtype=torch.long))
                         for x in instances],
        "sentences": [list(x.get("sentences", [])) for x in instances],
        "meta": [x.get("meta", {}) for x in instances],
    }, "data_samples": None}
