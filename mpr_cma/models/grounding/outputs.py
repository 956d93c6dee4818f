"""The named outputs of `SAM2Grounding`: encoder features and one decoder pass."""

from typing import NamedTuple

from torch import Tensor


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

    @property
    def num_frames(self) -> int:
        """F, the number of frames."""
        return self.backbone.shape[0]

    def frame(self, t: int) -> "GroundingFeatures":
        """The features of frame t alone (views, F = 1); `LazyVideoFeatures` has the same."""
        return GroundingFeatures(self.image_embed[t : t + 1], self.backbone[t : t + 1],
                                 self.backbone_pos[t : t + 1],
                                 tuple(h[t : t + 1] for h in self.high_res))


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
