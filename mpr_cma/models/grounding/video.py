"""Video grounding with SAM-2 memory: Sa2VA's frame rule, and ours as an option.

Sa2VA's `predict_forward` (`hf/models/modeling_sa2va_chat.py`, `hf/models/sam2.py`
`language_embd_inference`) adds the [SEG] embedding on the first min(5, T) frames - the
frames its MLLM sees - each an initial conditioning frame segmented without memory, then
`propagate_in_video` tracks every other frame with SAM-2's memory and no language prompt.
This function covers that and our earlier rule with two arguments:

- `key_frames` are SAM-2 "initial conditioning frames": segmented without memory (the
  image embedding plus `no_mem_embed`), exactly like `SAM2Grounding.segment_images`, with
  the [SEG] prompt (and MBA, two passes);
- every other frame is tracked: its features are conditioned by SAM-2's own
  `_prepare_memory_conditioned_features` on the memories of all key frames (temporal
  position 0) and of up to `num_maskmem - 1` previous frames, plus object pointers;
  `prompt_tracked=False` (Sa2VA) decodes it without a language prompt, True (ours before)
  with the [SEG] prompt and MBA;
- an un-prompted tracked frame runs SAM-2's decoder once (plain tracking, Sa2VA), or, with
  `mba_tracked`, pass 1 -> MBA with the object's text tokens -> pass 2, both unprompted;
- after each frame, `_encode_new_memory` encodes the raw backbone features with the final
  high-res mask; the memory features are kept at `memory_dtype` precision (Sa2VA stores
  them in bf16), and the final pass's object pointer is stored. Memories of non-key
  frames older than SAM-2 can read (`_memory_horizon`) are dropped, so the bank stays the
  same size however long the video is; with `LazyVideoFeatures` (each frame encoded when
  visited) inference memory is then flat in the number of frames.

With every frame a key frame this is Sa2VA's training path (frames independent). Gradients
flow through the memories, as in SAM-2 training.

A temporal MBA (`uses_tracks`, e.g. `projects/st_mba`) sees an object's key frames
together: they read no memory, so all of them are decoded in one call (pass 1 on every key
frame, MBA over the object's key-frame track, pass 2), as training decodes an object's
frames; the memories are then encoded frame by frame as before. Tracked frames reach it
one at a time (a track of one frame). A per-frame MBA keeps the frame-by-frame loop.

Frames are visited as key frames first, then the other frames in increasing time order, as
Sa2VA's `propagate_in_video` does from its earliest conditioning frame. A frame before the
first key frame is therefore tracked forwards from the key-frame memories, not propagated
in reverse; no hole filling or non-overlap post-processing is applied (Sa2VA applies none).
"""

from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from mpr_cma.models.grounding.sam2_grounding import GroundingFeatures, SAM2Grounding


def _flat(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (H*W, B, C), SAM-2's sequence-first layout."""
    return x.flatten(2).permute(2, 0, 1)


def _check_key_frames(key_frames: list[int], num_frames: int) -> list[int]:
    keys = sorted({int(t) for t in key_frames})
    if not keys:
        raise ValueError("segment_video needs at least one key frame")
    if keys[0] < 0 or keys[-1] >= num_frames:
        raise ValueError(f"key frames {keys} out of range for {num_frames} frames")
    return keys


def segment_video(
    grounding: "SAM2Grounding",
    features: "GroundingFeatures",
    prompt: Tensor,
    key_frames: list[int],
    text: Tensor | None = None,
    text_mask: Tensor | None = None,
    prompt_tracked: bool = False,
    mba_tracked: bool = False,
    memory_dtype: torch.dtype | None = torch.bfloat16,
) -> dict:
    """Segment O objects through the T frames of one video (see module docstring).

    Args:
        grounding: the SAM2Grounding model.
        features: its `encode` output for the T frames, or a `LazyVideoFeatures` that
            encodes each frame when it is visited (anything with `num_frames` and
            `frame(t)`).
        prompt: (O, n, C) [SEG] embeddings. text: (O, N, C) or None. text_mask: (O, N).
        key_frames: indices of the conditioning frames (at least one).
        prompt_tracked: also prompt the tracked frames with [SEG] (and MBA).
        mba_tracked: run MBA on un-prompted tracked frames (needs `text` when MBA is set).
        memory_dtype: precision the memory features are rounded to (None: as computed).

    Returns:
        dict with "pred_masks" (O, T, 4h, 4w) and "pred_masks_pass1" (O, T, 4h, 4w) fp32
        mask logits, "object_score_logits" (O, T), "prompted" (sorted frames decoded with
        the [SEG] prompt) and "mba_frames" (frames MBA ran on, in the order it ran).
    """
    sam = grounding.sam2_model
    num_frames = features.num_frames
    keys = _check_key_frames(key_frames, num_frames)
    num_obj = prompt.shape[0]
    order = keys + [t for t in range(num_frames) if t not in set(keys)]
    horizon = _memory_horizon(sam)
    memory = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
    final_masks, first_masks, scores = {}, {}, {}
    prompted, mba_frames = [], []
    joint = {}
    if grounding.mba is not None and getattr(grounding.mba, "uses_tracks", False):
        joint = _decode_key_frames(grounding, features, prompt, keys, text, text_mask, memory)
    for t in order:
        is_key = t in keys
        current = features.frame(t)
        size = tuple(current.backbone.shape[-2:])
        # One row per object: the frame's features are shared (expand, no copy).
        backbone = _flat(current.backbone.expand(num_obj, -1, -1, -1))
        with_prompt = is_key or prompt_tracked
        use_mba = grounding.mba is not None and (with_prompt or mba_tracked)
        if t in joint:
            final, first = joint[t]
        else:
            pos = _flat(current.backbone_pos.expand(num_obj, -1, -1, -1))
            high_res = [h.expand(num_obj, -1, -1, -1) for h in current.high_res]
            with grounding._autocast(backbone.device):
                visual = sam._prepare_memory_conditioned_features(
                    frame_idx=t,
                    is_init_cond_frame=is_key,
                    current_vision_feats=[backbone],
                    current_vision_pos_embeds=[pos],
                    feat_sizes=[size],
                    output_dict=memory,
                    num_frames=num_frames,
                )
            final, first, _, _ = grounding.decode(visual, high_res,
                                                  prompt if with_prompt else None,
                                                  text, text_mask, use_mba=use_mba)
        prompted += [t] if with_prompt else []
        mba_frames += [t] if use_mba else []
        _store(grounding, memory, t, is_key, backbone, size, final, memory_dtype)
        # Non-key frames are visited in increasing order, and SAM-2 reads back at most
        # `horizon` frames: older memories are never read again (flat memory in T).
        bank = memory["non_cond_frame_outputs"]
        for old in [k for k in bank if k < t - horizon]:
            del bank[old]
        final_masks[t], first_masks[t] = final.low_res[:, 0], first.low_res[:, 0]
        scores[t] = final.object_score[:, 0]
    frames = range(num_frames)
    return {
        "pred_masks": torch.stack([final_masks[t] for t in frames], dim=1),
        "pred_masks_pass1": torch.stack([first_masks[t] for t in frames], dim=1),
        "object_score_logits": torch.stack([scores[t] for t in frames], dim=1).float(),
        "prompted": sorted(prompted),
        "mba_frames": mba_frames,
    }


def _memory_horizon(sam) -> int:
    """How many frames back `_prepare_memory_conditioned_features` can read a non-key
    frame's memory or object pointer (SAM2Base: `num_maskmem - 1` memories, at a stride in
    eval mode, and `max_obj_ptrs_in_encoder - 1` pointers), with a margin of one stride."""
    stride = max(1, int(getattr(sam, "memory_temporal_stride_for_eval", 1)))
    pointers = int(getattr(sam, "max_obj_ptrs_in_encoder", 16)) if getattr(
        sam, "use_obj_ptrs_in_encoder", False) else 0
    return max((sam.num_maskmem + 1) * stride, pointers)


def _store(grounding: "SAM2Grounding", memory: dict, t: int, is_key: bool, backbone: Tensor,
           size: tuple, final, memory_dtype: torch.dtype | None) -> None:
    """Encode frame t's memory from its raw features and final mask, into the bank."""
    with grounding._autocast(backbone.device):
        mem_feats, mem_pos = grounding.sam2_model._encode_new_memory(
            current_vision_feats=[backbone],
            feat_sizes=[size],
            pred_masks_high_res=final.high_res,
            object_score_logits=final.object_score,
            is_mask_from_pts=is_key,
        )
    if memory_dtype is not None:
        # Sa2VA stores the memory in bf16; the reader promotes it back (torch.cat).
        mem_feats = mem_feats.to(memory_dtype).to(mem_feats.dtype)
    bank = memory["cond_frame_outputs" if is_key else "non_cond_frame_outputs"]
    bank[t] = {"maskmem_features": mem_feats, "maskmem_pos_enc": mem_pos,
               "obj_ptr": final.obj_ptr}


def _decode_key_frames(grounding: "SAM2Grounding", features: "GroundingFeatures",
                       prompt: Tensor, keys: list[int], text: Tensor | None,
                       text_mask: Tensor | None, memory: dict) -> dict:
    """Decode every key frame of every object in one call, rows in (object, frame) order
    with the object as `track_index`: {t: (final pass, first pass)} with O rows each."""
    sam = grounding.sam2_model
    num_obj, num_keys = prompt.shape[0], len(keys)
    visuals, high_res = [], []
    for t in keys:
        current = features.frame(t)
        size = tuple(current.backbone.shape[-2:])
        backbone = _flat(current.backbone.expand(num_obj, -1, -1, -1))
        pos = _flat(current.backbone_pos.expand(num_obj, -1, -1, -1))
        with grounding._autocast(backbone.device):
            # An initial conditioning frame reads no memory: the bank is not consulted.
            visuals.append(sam._prepare_memory_conditioned_features(
                frame_idx=t, is_init_cond_frame=True, current_vision_feats=[backbone],
                current_vision_pos_embeds=[pos], feat_sizes=[size], output_dict=memory,
                num_frames=features.num_frames))
        high_res.append([h.expand(num_obj, -1, -1, -1) for h in current.high_res])

    def rows(per_frame: list[Tensor]) -> Tensor:  # K x (O, ...) -> (O * K, ...)
        return torch.stack(per_frame, dim=1).flatten(0, 1)

    def per_object(x: Tensor | None) -> Tensor | None:  # (O, ...) -> (O * K, ...)
        return None if x is None else x.repeat_interleave(num_keys, dim=0)

    track = torch.arange(num_obj, device=prompt.device).repeat_interleave(num_keys)
    final, first, _, _ = grounding.decode(
        rows(visuals), [rows(list(level)) for level in zip(*high_res, strict=True)],
        per_object(prompt), per_object(text), per_object(text_mask), track_index=track)

    def frame(out, k: int):
        return type(out)(*(f.view(num_obj, num_keys, *f.shape[1:])[:, k] for f in out))

    return {t: (frame(final, k), frame(first, k)) for k, t in enumerate(keys)}
