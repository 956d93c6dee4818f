"""Video grounding: SAM-2 memory propagation with the [SEG] prompt (and MBA) on every frame.

How Sa2VA does it: at inference the [SEG] embedding is added to SAM-2's video predictor on
the frames it is given, then `propagate_in_video` runs SAM-2's tracking; during training
every frame is segmented independently (image mode, no memory). This function covers both
with one rule:

- key frames are SAM-2 "initial conditioning frames": segmented without memory (the image
  embedding plus `no_mem_embed`), exactly like `SAM2Grounding.segment_images`;
- every other frame is tracked: its features are conditioned by SAM-2's own
  `_prepare_memory_conditioned_features` on the memories of all key frames (temporal
  position 0) and of up to `num_maskmem - 1` previous frames, plus object pointers;
- the [SEG] prompt goes to the decoder on every frame, and MBA (two passes) runs frame by
  frame on the memory-conditioned features;
- after each frame, `_encode_new_memory` encodes the raw backbone features with the final
  (pass-2) high-res mask, and the final pass's object pointer is stored.

With every frame a key frame this is Sa2VA's training path (frames independent). Gradients
flow through the memories, as in SAM-2 training.

Simplification (documented, not SAM-2's predictor): frames are visited as key frames first,
then the other frames in increasing time order. A frame before the first key frame is
therefore tracked forwards from the key-frame memories, not propagated in reverse as the
SAM-2 predictor would; no hole filling or non-overlap post-processing is applied.
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
) -> dict[str, Tensor]:
    """Segment O objects through the T frames of one video (see module docstring).

    Args:
        grounding: the SAM2Grounding model.
        features: its `encode` output for the T frames.
        prompt: (O, n, C) [SEG] embeddings. text: (O, N, C) or None. text_mask: (O, N).
        key_frames: indices of the conditioning frames (at least one).

    Returns:
        dict with "pred_masks" (O, T, 4h, 4w) and "pred_masks_pass1" (O, T, 4h, 4w) fp32
        mask logits, and "object_score_logits" (O, T).
    """
    sam = grounding.sam2_model
    num_frames = features.backbone.shape[0]
    keys = _check_key_frames(key_frames, num_frames)
    num_obj = prompt.shape[0]
    order = keys + [t for t in range(num_frames) if t not in set(keys)]
    size = tuple(features.backbone.shape[-2:])
    memory = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
    final_masks, first_masks, scores = {}, {}, {}
    for t in order:
        is_key = t in keys
        # One row per object: the frame's features are shared (expand, no copy).
        backbone = _flat(features.backbone[t : t + 1].expand(num_obj, -1, -1, -1))
        pos = _flat(features.backbone_pos[t : t + 1].expand(num_obj, -1, -1, -1))
        high_res = [h[t : t + 1].expand(num_obj, -1, -1, -1) for h in features.high_res]
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
        final, first, _, _ = grounding.decode(visual, high_res, prompt, text, text_mask)
        with grounding._autocast(backbone.device):
            mem_feats, mem_pos = sam._encode_new_memory(
                current_vision_feats=[backbone],
                feat_sizes=[size],
                pred_masks_high_res=final.high_res,
                object_score_logits=final.object_score,
                is_mask_from_pts=is_key,
            )
        bank = memory["cond_frame_outputs" if is_key else "non_cond_frame_outputs"]
        bank[t] = {"maskmem_features": mem_feats, "maskmem_pos_enc": mem_pos,
                   "obj_ptr": final.obj_ptr}
        final_masks[t], first_masks[t] = final.low_res[:, 0], first.low_res[:, 0]
        scores[t] = final.object_score[:, 0]
    frames = range(num_frames)
    return {
        "pred_masks": torch.stack([final_masks[t] for t in frames], dim=1),
        "pred_masks_pass1": torch.stack([first_masks[t] for t in frames], dim=1),
        "object_score_logits": torch.stack([scores[t] for t in frames], dim=1).float(),
    }
