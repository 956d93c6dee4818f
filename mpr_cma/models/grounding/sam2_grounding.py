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
  `detach_prior=True` is the knob for the ablation.
- SAM-2 replaces the logits of an object it scores absent by -1024 (object score <= 0).
  That choice is hard (no gradient), and no loss of Sa2VA (nor ours) trains the
  object-score head on language prompts, so its verdict is untrained: applied in training
  it pins such objects at a loss of ~1000 per pixel, applied at inference it erases the
  masks of objects it happens to score absent (seen on the tiny demo model: cIoU 0).
  By default (`object_gating="never"`) it is therefore off; "eval" applies it at
  inference only and "always" is SAM-2's own behaviour, for checkpoints whose object-score
  head was trained for language prompts.
"""

import contextlib
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mpr_cma.models.grounding.builder import (
    DEFAULT_SAM2_CONFIG,
    build_language_sam2,
    tiny_sam2_overrides,
)
from mpr_cma.models.grounding.video import segment_video
from mpr_cma.registry import MODELS

SIZE_PRESETS = {None: list, "tiny": tiny_sam2_overrides}
OBJECT_GATING = ("eval", "always", "never")
# SAM-2's input normalisation (ImageNet statistics on [0, 1] pixels).
PIXEL_MEAN = (0.485, 0.456, 0.406)
PIXEL_STD = (0.229, 0.224, 0.225)


class GroundingFeatures(NamedTuple):
    """Per-frame SAM-2 backbone features, output of `SAM2Grounding.encode`.

    Attributes:
        image_embed: (F, C, h, w) image-mode embedding F_v: the top FPN level plus SAM-2's
            `no_mem_embed` (h = w = S / 16).
        backbone: (F, C, h, w) the top FPN level itself, the input of memory attention and
            of the memory encoder in video mode.
        backbone_pos: (F, C, h, w) its sine positional encoding.
        high_res: ((F, C/8, 4h, 4w), (F, C/4, 2h, 2w)) FPN levels 0 and 1 after the
            decoder's `conv_s0` / `conv_s1` (as `SAM2Base.forward_image` returns them).
    """

    image_embed: Tensor
    backbone: Tensor
    backbone_pos: Tensor
    high_res: tuple[Tensor, ...]


class DecoderOutput(NamedTuple):
    """One SAM-2 decoder pass for B objects (fp32 masks, as SAM-2 returns them).

    Attributes:
        low_res: (B, 1, 4h, 4w) mask logits. high_res: (B, 1, S, S) the same, upsampled.
        iou: (B, M) predicted IoUs. obj_ptr: (B, C) object pointer.
        object_score: (B, 1) object-presence logit.
    """

    low_res: Tensor
    high_res: Tensor
    iou: Tensor
    obj_ptr: Tensor
    object_score: Tensor


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
        mba: a built `MaskBiasedAttention` / `MaskBiasedFiLM` (or its config dict, whose
            `dim` defaults to SAM-2's width); None = exactly Sa2VA (one decoder pass).
        train_mask_decoder: make the mask decoder trainable (Sa2VA does).
        train_image_encoder: make the image encoder (Hiera + FPN neck) trainable. Sa2VA keeps
            the pretrained encoder frozen (False, the paper's setting); a random-init tiny
            model (the CPU demo) has no features to keep and learns its own. The prompt
            encoder and the memory modules are always frozen.
        detach_prior: detach pass-1 logits before the MBA gate (see module docstring).
        multimask_output: None = SAM-2's rule as Sa2VA uses it; True/False force it.
        object_gating: when SAM-2's no-object substitution (absent object -> logits -1024)
            applies: "never" (ours, default: the head is untrained for language prompts),
            "eval" (inference only), "always" (SAM-2's behaviour).
        autocast_dtype: run SAM-2 and MBA under `torch.autocast` in this dtype (Sa2VA runs
            SAM-2 under bf16 autocast). None = use the caller's context. SAM-2's decoder
            cannot run with bf16 *parameters* on CPU (layer norms get fp32 inputs), so on
            CPU keep fp32 weights and use this flag for bf16 compute.
    """

    def __init__(
        self,
        sam2_config: str = DEFAULT_SAM2_CONFIG,
        ckpt_path: str | None = None,
        image_size: int = 1024,
        hydra_overrides: list[str] | tuple[str, ...] = (),
        size_preset: str | None = None,
        mba: nn.Module | dict | None = None,
        train_mask_decoder: bool = True,
        train_image_encoder: bool = False,
        detach_prior: bool = False,
        multimask_output: bool | None = None,
        object_gating: str = "never",
        autocast_dtype: torch.dtype | str | None = None,
    ):
        super().__init__()
        if size_preset not in SIZE_PRESETS:
            raise ValueError(f"size_preset must be one of {sorted(map(str, SIZE_PRESETS))}, "
                             f"got {size_preset!r}")
        overrides = [*SIZE_PRESETS[size_preset](), *hydra_overrides]
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
            raise ValueError(f"object_gating must be one of {OBJECT_GATING}, got "
                             f"{object_gating!r}")
        self.object_gating = object_gating
        if isinstance(autocast_dtype, str):
            autocast_dtype = getattr(torch, autocast_dtype)
        self.autocast_dtype = autocast_dtype
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(1, 3, 1, 1), False)
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
        sam.gate_absent_objects = (self.object_gating == "always"
                                   or (self.object_gating == "eval" and not mode))
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
    def preprocess(self, images: Tensor) -> Tensor:
        """Resize and normalise images like SAM-2 (bilinear with antialias, ImageNet stats).

        Args:
            images: (F, 3, H, W) uint8, or float in [0, 255].

        Returns:
            (F, 3, S, S) fp32 normalised pixels, S = `image_size`.
        """
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (F, 3, H, W), got {tuple(images.shape)}")
        x = images.float()
        size = (self.image_size, self.image_size)
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        return (x / 255.0 - self.pixel_mean) / self.pixel_std

    @staticmethod
    def upsample_masks(mask_logits: Tensor, size: tuple[int, int]) -> Tensor:
        """Bilinearly resize (B, K, h, w) mask logits to (B, K, H, W) fp32 (as Sa2VA does)."""
        return F.interpolate(mask_logits.float(), size=size, mode="bilinear", align_corners=False)

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
    ) -> dict[str, Tensor | dict]:
        """Segment one object per row, each on its own frame, without memory (image mode).

        Args:
            features: `encode` output of F frames.
            frame_index: (B,) int64, frame of each object (objects of one image share it).
            prompt: (B, n, C) [SEG] embeddings projected to C (n = 1 in Sa2VA).
            text: (B, N, C) text tokens F_t for MBA; required when `mba` is set.
            text_mask: (B, N) bool, True = real token; None = all real.
            return_attention: also return MBA's attention maps.

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
                                                  return_attention)
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
        prompt: Tensor,
        text: Tensor | None = None,
        text_mask: Tensor | None = None,
        return_attention: bool = False,
    ) -> tuple[DecoderOutput, DecoderOutput, Tensor, dict | None]:
        """Decoder pass 1, MBA and pass 2 on per-object features (one row per object).

        Args:
            visual: (B, C, h, w) F_v (image embedding or memory-conditioned features).
            high_res: [(B, C/8, 4h, 4w), (B, C/4, 2h, 2w)] high-res decoder features.
            prompt, text, text_mask, return_attention: as in `segment_images`.

        Returns:
            (final pass, first pass, features of the final pass (B, C, h, w), MBA info or
            None). Without mba the first pass is the final one and F_v is returned as is.
        """
        b = visual.shape[0]
        if prompt.dim() != 3 or prompt.shape[0] != b or prompt.shape[2] != self.hidden_dim:
            raise ValueError(
                f"prompt must be (B={b}, n, C={self.hidden_dim}), got {tuple(prompt.shape)}"
            )
        with self._autocast(visual.device):
            first = self._sam_heads(visual, high_res, prompt)
            if self.mba is None:
                return first, first, visual, None
            if text is None:
                raise ValueError("SAM2Grounding with mba needs `text` (B, N, C) tokens")
            prior = first.low_res.detach() if self.detach_prior else first.low_res
            refined = self.mba(visual, text, prior, text_mask, return_attention=return_attention)
            info = None
            if return_attention:
                refined, info = refined
            final = self._sam_heads(refined, high_res, prompt)
        return final, first, refined, info

    # ------------------------------------------------------------------ video
    def segment_video(
        self,
        features: GroundingFeatures,
        prompt: Tensor,
        key_frames: list[int],
        text: Tensor | None = None,
        text_mask: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Segment O objects through T frames with SAM-2 memory; see `video.segment_video`.

        Args:
            features: `encode` output of the T frames of one video.
            prompt: (O, n, C) [SEG] embeddings, one row per object.
            key_frames: conditioning frames (segmented without memory); the others are
                tracked with memory attention. All frames = Sa2VA's per-frame path.
            text: (O, N, C) text tokens for MBA. text_mask: (O, N) bool.

        Returns:
            dict with "pred_masks" (O, T, 4h, 4w), "pred_masks_pass1" (O, T, 4h, 4w),
            "object_score_logits" (O, T) fp32.
        """
        return segment_video(self, features, prompt, key_frames, text, text_mask)
