"""SAM-2 grounding head of Sa2VA-MBA: image encoder, two-pass mask decoding with MBA, video.

Data flow per object (DESIGN.md "Data flow"):

    F_v = SAM-2 image embedding (+ no_mem_embed, or memory-conditioned in video)
    pass 1: decoder(F_v, prompt = [SEG] embedding)           -> M_logits (B, 1, 4h, 4w)
    MBA:    F_v' = F_v + gamma * (MHA(F_v, TopK(F_t)) ⊙ sigmoid(M_logits / tau))
    pass 2: decoder(F_v', prompt)                             -> final mask logits

With `mba=None` only pass 1 runs: that is Sa2VA's grounding path, call for call.

Choices (the paper is silent on them):
- The prompt is Sa2VA's: no point, box or mask prompt (SAM-2 pads with one "not a point"
  token and uses `no_mask_embed` as dense prompt) plus the [SEG] embedding appended as
  sparse tokens. Both passes use the same prompt and the same high-res features.
- Multimask output follows SAM-2's own rule as Sa2VA calls it
  (`_use_multimask(is_init_cond_frame=True, point_inputs=None)`: True for the Hiera-L
  config, which has `multimask_min_pt_num: 0`), then the mask with the best predicted IoU
  is kept. The Sa2VA-1B weights were trained that way; `multimask_output=False` forces the
  single-mask token.
- Pass-1 logits are NOT detached by default (`detach_prior=False`): the gate is a smooth
  function of the decoder's own output, so pass 2's loss can also teach the decoder to give
  a better prior. gamma starts at 0, so early in training this gradient is 0 anyway.
  `detach_prior=True` is the knob for the ablation; it also runs pass 1 without autograd
  (nothing else reads pass 1's outputs in training), which saves its activations and its
  backward. What it changes in the gradients: the mask decoder and the [SEG] prompt (so
  the LLM and its projection) are trained by pass 2 only, not also through the gate's
  sigmoid(M / tau) of pass 1; MBA's own gradients are unchanged (it reads the prior's
  value either way). At gamma = 0 the two settings give the same gradients.
- An object SAM-2 scores absent (object score <= 0) gets two hard substitutions in SAM-2:
  mask logits -1024, and `no_obj_ptr` as object pointer (read by later frames' memory).
  Sa2VA keeps only the pointer one (the mask one is commented out in its `sam2.py`, in
  training and inference): `object_gating="pointer"`, the default. The mask substitution
  has no gradient and nothing trains the object-score head on language prompts: in
  training it pins such objects at a loss of ~1000 per pixel, at inference it erased the
  masks of the tiny demo model (cIoU 0). "never" removes both (the tiny configs' measured
  choice), "eval" applies both at inference only, "always" is SAM-2's own behaviour.
- SAM-2 input and mask output follow Sa2VA's code paths (`transforms`): PIL bicubic resize,
  bf16 normalisation at inference; logits resized to S x S then to the frame, kept where
  sigmoid > 0.5.
- Video (`segment_video`, `video_plan`): Sa2VA's rule by default (`video_prompt=
  "key_frames"`): the MLLM's key frames get the [SEG] prompt without memory, the others are
  tracked by SAM-2's memory alone; "all_frames" (ours before) conditions on the first key
  frame only and prompts every frame. MBA runs where the prompt does; on un-prompted
  tracked frames only with `mba_on_tracked_frames`.
"""

import contextlib

import torch
from torch import Tensor, nn

from mpr_cma.models.grounding.builder import (
    DEFAULT_SAM2_CONFIG,
    build_language_sam2,
    tiny_sam2_overrides,
)
from mpr_cma.models.grounding.outputs import DecoderOutput, GroundingFeatures
from mpr_cma.models.grounding.transforms import Frames, sam2_input, upsample_mask_logits
from mpr_cma.models.grounding.video import segment_video
from mpr_cma.registry import MODELS

SIZE_PRESETS = {None: list, "tiny": tiny_sam2_overrides}
# object_gating -> (substitute masks, substitute the object pointer), per mode (train, eval).
OBJECT_GATING = {
    "pointer": ((False, True), (False, True)),  # Sa2VA
    "never": ((False, False), (False, False)),
    "eval": ((False, False), (True, True)),
    "always": ((True, True), (True, True)),     # SAM-2
}
VIDEO_PROMPTS = ("key_frames", "all_frames")


@MODELS.register_module()
class SAM2Grounding(nn.Module):
    """SAM-2 prompted by [SEG] embeddings, with optional Mask-Biased Attention (two passes).

    Args:
        sam2_config: `sam2` package config name (Sa2VA-1B: "configs/sam2/sam2_hiera_l.yaml").
        ckpt_path: `{"model": state_dict}` SAM-2 checkpoint (sam2_hiera_large.pt), loaded
            strictly; None = random init (tiny models, or weights loaded later).
        image_size: SAM-2 input size S (1024 real; 64-256 for tiny CPU models).
        hydra_overrides: extra hydra overrides of the config (e.g. `tiny_sam2_overrides()`).
        size_preset: None = the config as it is; "tiny" = `tiny_sam2_overrides()` (a
            ~0.65 M-parameter CPU model of width 32), applied before `hydra_overrides`.
        preset_dim: SAM-2 width C of the "tiny" preset (None = its default 32). At C = 32
            the decoder has 8 attention heads of width 2 in cross-attention and a 4-channel
            mask embedding (C / 8); wider ones pick up a prompt sooner
            (scripts/probe_prompt_grounding.py, docs/demo.md "Why the tiny model did not
            refer").
        preset_trunk_dim: Hiera stage-1 width of the "tiny" preset (None = its default 8;
            the stages are 1, 2, 4, 8 times it). The image encoder is what tells shapes
            apart (docs/demo.md "Shape, not colour").
        mba: a built `MaskBiasedAttention` / `MaskBiasedFiLM` (or its config dict, whose
            `dim` defaults to SAM-2's width); None = exactly Sa2VA (one decoder pass).
        train_mask_decoder: make the mask decoder trainable (Sa2VA does).
        train_image_encoder: make the image encoder (Hiera + FPN neck) trainable. Sa2VA keeps
            the pretrained encoder frozen (False, the paper's setting); a random-init tiny
            model (the CPU demo) has no features to keep and learns its own. The prompt
            encoder and the memory modules are always frozen.
        detach_prior: detach pass-1 logits before the MBA gate (see module docstring).
        multimask_output: None = SAM-2's rule as Sa2VA uses it; True/False force it.
        object_gating: SAM-2's substitutions for an object scored absent (see the module
            docstring): "pointer" (Sa2VA, default: the pointer only), "never", "eval"
            (both, at inference only), "always" (both: SAM-2's behaviour).
        autocast_dtype: run SAM-2 and MBA under `torch.autocast` in this dtype (Sa2VA runs
            SAM-2 under bf16 autocast). None = use the caller's context. SAM-2's decoder
            cannot run with bf16 *parameters* on CPU (layer norms get fp32 inputs), so on
            CPU keep fp32 weights and use this flag for bf16 compute.
        video_prompt: video frame rule: "key_frames" (Sa2VA, default: the MLLM's key frames
            are prompted without memory, the rest tracked without prompt) or "all_frames"
            (ours before: the first key frame conditions, every frame is prompted).
        mba_on_tracked_frames: also run MBA (with the object's text tokens, no prompt) on
            the un-prompted tracked frames of the "key_frames" rule. False (default):
            those frames are plain SAM-2 tracking, as in Sa2VA; the paper's "frame by
            frame" MBA then acts on the prompted frames and reaches the others through
            their memories.
        memory_dtype: precision of the stored video memory features (Sa2VA: bfloat16);
            None keeps the compute precision.
    """

    def __init__(
        self,
        sam2_config: str = DEFAULT_SAM2_CONFIG,
        ckpt_path: str | None = None,
        image_size: int = 1024,
        hydra_overrides: list[str] | tuple[str, ...] = (),
        size_preset: str | None = None,
        preset_dim: int | None = None,
        preset_trunk_dim: int | None = None,
        mba: nn.Module | dict | None = None,
        train_mask_decoder: bool = True,
        train_image_encoder: bool = False,
        detach_prior: bool = False,
        multimask_output: bool | None = None,
        object_gating: str = "pointer",
        autocast_dtype: torch.dtype | str | None = None,
        video_prompt: str = "key_frames",
        mba_on_tracked_frames: bool = False,
        memory_dtype: torch.dtype | str | None = "bfloat16",
    ):
        super().__init__()
        if size_preset not in SIZE_PRESETS:
            raise ValueError(f"size_preset must be one of {sorted(map(str, SIZE_PRESETS))}, "
                             f"got {size_preset!r}")
        preset_kwargs = {name: int(value) for name, value in
                         (("dim", preset_dim), ("trunk_dim", preset_trunk_dim))
                         if value is not None}
        if preset_kwargs and size_preset != "tiny":
            raise ValueError(f"preset_dim / preset_trunk_dim apply to size_preset='tiny' "
                             f"only, got size_preset={size_preset!r}")
        overrides = [*SIZE_PRESETS[size_preset](**preset_kwargs), *hydra_overrides]
        self.sam2_model = build_language_sam2(sam2_config, image_size, overrides, ckpt_path)
        if isinstance(mba, dict):
            # MBA works at SAM-2's width; a config may leave `dim` out.
            mba = MODELS.build({"dim": self.hidden_dim, **mba})
        if mba is not None and getattr(mba, "dim", self.hidden_dim) != self.hidden_dim:
            raise ValueError(
                f"mba.dim ({mba.dim}) must equal SAM-2's hidden_dim ({self.hidden_dim})"
            )
        self.mba = mba
        self.image_size = image_size
        self.detach_prior = detach_prior
        if multimask_output is None:
            multimask_output = self.sam2_model._use_multimask(
                is_init_cond_frame=True, point_inputs=None
            )
        self.multimask_output = bool(multimask_output)
        if object_gating not in OBJECT_GATING:
            raise ValueError(f"object_gating must be one of {tuple(OBJECT_GATING)}, got "
                             f"{object_gating!r}")
        self.object_gating = object_gating
        if video_prompt not in VIDEO_PROMPTS:
            raise ValueError(f"video_prompt must be one of {VIDEO_PROMPTS}, got "
                             f"{video_prompt!r}")
        self.video_prompt = video_prompt
        self.mba_on_tracked_frames = bool(mba_on_tracked_frames)
        self.autocast_dtype = _dtype(autocast_dtype, "autocast_dtype")
        self.memory_dtype = _dtype(memory_dtype, "memory_dtype")
        # Sa2VA: the whole of SAM-2 is frozen, then the mask decoder is unfrozen.
        self.sam2_model.requires_grad_(False)
        self.sam2_model.sam_mask_decoder.requires_grad_(train_mask_decoder)
        self.sam2_model.image_encoder.requires_grad_(train_image_encoder)
        self.train_image_encoder = train_image_encoder
        self.train()

    @property
    def hidden_dim(self) -> int:
        """SAM-2 channel width C (256 for the real model)."""
        return self.sam2_model.hidden_dim

    def train(self, mode: bool = True) -> "SAM2Grounding":
        """Set train/eval mode; frozen SAM-2 parts always stay in eval mode.

        Memory attention has dropout 0.1: a frozen module must not be stochastic.
        """
        super().train(mode)
        sam = self.sam2_model
        sam.gate_masks, sam.gate_pointer = OBJECT_GATING[self.object_gating][0 if mode else 1]
        frozen = [sam.memory_attention, sam.memory_encoder]
        if not self.train_image_encoder:
            frozen.append(sam.image_encoder)
        for module in frozen:
            module.eval()
        return self

    def _autocast(self, device: torch.device):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast_dtype)

    # ------------------------------------------------------------------ images
    def preprocess(self, images: Frames, video: bool = False) -> Tensor:
        """SAM-2 input of Sa2VA's inference: PIL bicubic resize to S x S, bf16 normalisation.

        Args:
            images: (F, 3, H, W) uint8 tensor, or F RGB images (PIL or (H, W, 3) uint8).
            video: normalise as Sa2VA's video path ("bf16_stats") instead of its image path
                ("bf16"); training data use "fp32" (`mpr_cma.datasets.sam2_pixels`).

        Returns:
            (F, 3, S, S) fp32 normalised pixels (bf16 values), S = `image_size`, on the
            device of a tensor input (else the CPU).
        """
        device = images.device if isinstance(images, Tensor) else torch.device("cpu")
        mode = "bf16_stats" if video else "bf16"
        return sam2_input(images, self.image_size, mode).to(device)

    def upsample_masks(self, mask_logits: Tensor, size: tuple[int, int]) -> Tensor:
        """(B, K, h, w) mask logits -> (B, K, H, W) fp32, via S x S as Sa2VA does (bilinear)."""
        return upsample_mask_logits(mask_logits, self.image_size, size)

    def encode(self, g_pixel_values: Tensor) -> GroundingFeatures:
        """Run the image encoder (frozen unless `train_image_encoder`) on preprocessed frames.

        Args:
            g_pixel_values: (F, 3, S, S) output of `preprocess`.

        Returns:
            GroundingFeatures of the F frames.
        """
        s = self.image_size
        if g_pixel_values.dim() != 4 or tuple(g_pixel_values.shape[1:]) != (3, s, s):
            raise ValueError(
                f"g_pixel_values must be (F, 3, {s}, {s}), got {tuple(g_pixel_values.shape)}"
            )
        sam = self.sam2_model
        with self._autocast(g_pixel_values.device):
            backbone_out = sam.forward_image(g_pixel_values)
            _, feats, pos, sizes = sam._prepare_backbone_features(backbone_out)
            # Image mode = SAM-2's initial conditioning frame without memory: with
            # `directly_add_no_mem_embed` (all released configs) this adds no_mem_embed.
            image_embed = sam._prepare_memory_conditioned_features(
                frame_idx=0,
                is_init_cond_frame=True,
                current_vision_feats=feats[-1:],
                current_vision_pos_embeds=pos[-1:],
                feat_sizes=sizes[-1:],
                output_dict={},
                num_frames=1,
            )
        high_res = tuple(backbone_out["backbone_fpn"][:-1])
        return GroundingFeatures(
            image_embed=image_embed,
            backbone=backbone_out["backbone_fpn"][-1],
            backbone_pos=backbone_out["vision_pos_enc"][-1],
            high_res=high_res,
        )

    def segment_images(
        self,
        features: GroundingFeatures,
        frame_index: Tensor,
        prompt: Tensor,
        text: Tensor | None = None,
        text_mask: Tensor | None = None,
        return_attention: bool = False,
        track_index: Tensor | None = None,
    ) -> dict[str, Tensor | dict]:
        """Segment one object per row, each on its own frame, without memory (image mode).

        Args:
            features: `encode` output of F frames.
            frame_index: (B,) int64, frame of each object (objects of one image share it).
            prompt: (B, n, C) [SEG] embeddings projected to C (n = 1 in Sa2VA).
            text: (B, N, C) text tokens F_t for MBA; required when `mba` is set.
            text_mask: (B, N) bool, True = real token; None = all real.
            return_attention: also return MBA's attention maps.
            track_index: (B,) int64, equal for the rows that are frames of one object (in
                frame order); passed to an MBA with `uses_tracks` (a temporal MBA), and
                ignored by the per-frame one. None = no tracks known.

        Returns:
            dict with
            - "pred_masks": (B, 1, 4h, 4w) fp32 final mask logits (low-res, as Sa2VA),
            - "pred_masks_pass1": (B, 1, 4h, 4w) fp32 first-pass logits (the MBA prior;
              the same tensor as "pred_masks" when mba is None),
            - "image_features": (B, C, h, w) F_v,
            - "decoder_features": (B, C, h, w) features of the final pass (F_v', for TMC),
            - "iou_pred": (B, M), "object_score_logits": (B, 1),
            - "attention": MBA's info dict (only with `return_attention` and mba set).
        """
        index = frame_index.to(device=features.image_embed.device, dtype=torch.long)
        if index.dim() != 1:
            raise ValueError(f"frame_index must be (B,), got {tuple(frame_index.shape)}")
        visual = features.image_embed.index_select(0, index)
        high_res = [h.index_select(0, index) for h in features.high_res]
        final, first, refined, info = self.decode(visual, high_res, prompt, text, text_mask,
                                                  return_attention, track_index=track_index)
        out = {
            "pred_masks": final.low_res,
            "pred_masks_pass1": first.low_res,
            "image_features": visual,
            "decoder_features": refined,
            "iou_pred": final.iou,
            "object_score_logits": final.object_score,
        }
        if info is not None:
            out["attention"] = info
        return out

    # ------------------------------------------------------------------ decoding
    def _sam_heads(self, visual: Tensor, high_res: list[Tensor], prompt: Tensor) -> DecoderOutput:
        out = self.sam2_model._forward_sam_heads(
            backbone_features=visual,
            point_inputs=None,
            mask_inputs=None,
            high_res_features=high_res,
            multimask_output=self.multimask_output,
            language_embd=prompt,
        )
        _, _, iou, low_res, high_res_mask, obj_ptr, object_score = out
        return DecoderOutput(low_res, high_res_mask, iou, obj_ptr, object_score)

    def decode(
        self,
        visual: Tensor,
        high_res: list[Tensor],
        prompt: Tensor | None,
        text: Tensor | None = None,
        text_mask: Tensor | None = None,
        return_attention: bool = False,
        use_mba: bool = True,
        track_index: Tensor | None = None,
    ) -> tuple[DecoderOutput, DecoderOutput, Tensor, dict | None]:
        """Decoder pass 1, MBA and pass 2 on per-object features (one row per object).

        Args:
            visual: (B, C, h, w) F_v (image embedding or memory-conditioned features).
            high_res: [(B, C/8, 4h, 4w), (B, C/4, 2h, 2w)] high-res decoder features.
            prompt: (B, n, C) [SEG] embeddings, or None for SAM-2's decoder without a
                language prompt (a tracked video frame).
            text, text_mask, return_attention: as in `segment_images`.
            use_mba: False runs one plain pass even when the model has MBA.
            track_index: (B,) object id of each row, as in `segment_images`.

        Returns:
            (final pass, first pass, features of the final pass (B, C, h, w), MBA info or
            None). Without MBA the first pass is the final one and F_v is returned as is.
        """
        b = visual.shape[0]
        if prompt is not None and (prompt.dim() != 3 or prompt.shape[0] != b
                                   or prompt.shape[2] != self.hidden_dim):
            raise ValueError(
                f"prompt must be (B={b}, n, C={self.hidden_dim}), got {tuple(prompt.shape)}"
            )
        two_pass = self.mba is not None and use_mba
        with self._autocast(visual.device):
            # A detached prior is all that pass 1 feeds (no loss reads its outputs), so it
            # runs without autograd: the same values and gradients as a detach after it,
            # none of its activations stored and no graph built.
            with torch.no_grad() if two_pass and self.detach_prior else contextlib.nullcontext():
                first = self._sam_heads(visual, high_res, prompt)
            if not two_pass:
                return first, first, visual, None
            if text is None:
                raise ValueError("SAM2Grounding with mba needs `text` (B, N, C) tokens")
            prior = first.low_res.detach() if self.detach_prior else first.low_res
            # Only a temporal MBA (`uses_tracks`) is told which rows are one object's frames.
            tracks = ({"track_index": track_index} if getattr(self.mba, "uses_tracks", False)
                      else {})
            refined = self.mba(visual, text, prior, text_mask, return_attention=return_attention,
                               **tracks)
            info = None
            if return_attention:
                refined, info = refined
            final = self._sam_heads(refined, high_res, prompt)
        return final, first, refined, info

    # ------------------------------------------------------------------ video
    def video_plan(self, key_frames: list[int]) -> tuple[list[int], bool]:
        """(conditioning frames, prompt the tracked frames?) of `video_prompt` for the
        MLLM's key frames: "key_frames" -> (the key frames, False), Sa2VA's rule;
        "all_frames" -> ([first key frame], True)."""
        keys = sorted({int(t) for t in key_frames})
        if not keys:
            raise ValueError("video_plan needs at least one key frame")
        if self.video_prompt == "key_frames":
            return keys, False
        return keys[:1], True

    def segment_video(
        self,
        features: GroundingFeatures,
        prompt: Tensor,
        key_frames: list[int],
        text: Tensor | None = None,
        text_mask: Tensor | None = None,
        prompt_tracked: bool = False,
    ) -> dict:
        """Segment O objects through T frames with SAM-2 memory; see `video.segment_video`.

        Args:
            features: `encode` output of the T frames of one video.
            prompt: (O, n, C) [SEG] embeddings, one row per object.
            key_frames: conditioning frames (prompted, segmented without memory); the
                others are tracked with memory attention. All frames = Sa2VA's per-frame
                training path. `video_plan` gives the frames of the `video_prompt` rule.
            text: (O, N, C) text tokens for MBA. text_mask: (O, N) bool.
            prompt_tracked: prompt the tracked frames too ("all_frames" rule).

        Returns:
            dict with "pred_masks" (O, T, 4h, 4w), "pred_masks_pass1" (O, T, 4h, 4w),
            "object_score_logits" (O, T) fp32, "prompted" and "mba_frames" (frame lists).
        """
        return segment_video(self, features, prompt, key_frames, text, text_mask,
                             prompt_tracked=prompt_tracked,
                             mba_tracked=self.mba_on_tracked_frames,
                             memory_dtype=self.memory_dtype)


def _dtype(value: torch.dtype | str | None, name: str) -> torch.dtype | None:
    """A torch dtype from a config value ("bfloat16", torch.bfloat16 or None)."""
    if value is None or isinstance(value, torch.dtype):
        return value
    dtype = getattr(torch, str(value), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"{name} must be a torch dtype name such as 'bfloat16', got {value!r}")
    return dtype
