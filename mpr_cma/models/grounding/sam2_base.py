"""SAM-2 with a language prompt: the `sam2` package's `SAM2Base`, extended by subclassing.

Sa2VA feeds the projected `[SEG]` hidden state to the SAM-2 mask decoder as an extra sparse
prompt token: the prompt encoder runs as usual with no point, box or mask (one padding
point, label -1, and the learned `no_mask_embed` as dense prompt) and the language token is
appended to its sparse output. Everything else in `SAM2Base._forward_sam_heads` (object
score gating, multimask selection, object pointer, upsampling) is SAM-2's own code.

To add the token without copying `_forward_sam_heads`, this subclass registers a forward
hook on its prompt encoder that appends the language embedding of the current call. The
hook is a bound method, so `copy.deepcopy` and pickling rebind it to the copy; it adds no
parameters, so state dicts keep the key names of `sam2_hiera_large.pt`.

SAM-2's two substitutions for an object it scores absent (object score <= 0) are switched
separately (`gate_masks`, `gate_pointer`): the masks become the constant NO_OBJ_SCORE
(-1024) and the object pointer becomes the learned `no_obj_ptr`. Sa2VA's SAM-2
(`hf/models/sam2.py` and `models/extension/sam2_base.py`) has the mask substitution
commented out and keeps the pointer one; `SAM2Grounding(object_gating=...)` picks.
"""

from collections.abc import Sequence

import torch
from sam2.modeling.sam2_base import SAM2Base
from torch import Tensor, nn


class LanguagePromptSAM2(SAM2Base):
    """`SAM2Base` whose `_forward_sam_heads` also accepts `language_embd` (B, n, C).

    Built by `build_language_sam2` through the package's hydra configs
    (`++model._target_` points here); the constructor takes exactly `SAM2Base`'s arguments.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._language_embd: Tensor | None = None
        # SAM-2's own behaviour: both substitutions on (SAM2Grounding sets them per mode).
        self.gate_masks = True
        self.gate_pointer = True
        self.sam_prompt_encoder.register_forward_hook(self._append_language_prompt)

    def _append_language_prompt(
        self, module: nn.Module, inputs: tuple, outputs: tuple[Tensor, Tensor]
    ) -> tuple[Tensor, Tensor] | None:
        """Forward hook of the prompt encoder: sparse (B, P, C) -> (B, P + n, C)."""
        language = self._language_embd
        if language is None:
            return None  # plain SAM-2 call: keep the prompt encoder's output
        sparse, dense = outputs
        if language.dim() != 3 or language.shape[0] != sparse.shape[0] or (
            language.shape[2] != sparse.shape[2]
        ):
            raise ValueError(
                f"language_embd must be (B={sparse.shape[0]}, n, C={sparse.shape[2]}), "
                f"got {tuple(language.shape)}"
            )
        return torch.cat([sparse, language.to(sparse.dtype)], dim=1), dense

    def _forward_sam_heads(
        self,
        backbone_features: Tensor,
        point_inputs: dict | None = None,
        mask_inputs: Tensor | None = None,
        high_res_features: Sequence[Tensor] | None = None,
        multimask_output: bool = False,
        language_embd: Tensor | None = None,
    ) -> tuple[Tensor, ...]:
        """`SAM2Base._forward_sam_heads` plus `language_embd` (B, n, C) sparse tokens.

        Returns SAM-2's 7-tuple: low-res multimasks (B, M, 4h, 4w) fp32, high-res
        multimasks (B, M, S, S) fp32, ious (B, M), low-res mask (B, 1, 4h, 4w), high-res
        mask (B, 1, S, S), object pointer (B, C), object score logits (B, 1).
        """
        self._language_embd = language_embd
        scores = self.pred_obj_scores
        # SAM-2's code applies both substitutions when pred_obj_scores is set; without them
        # the masks and the object pointer are the raw ones, as for a present object.
        self.pred_obj_scores = scores and self.gate_masks
        try:
            out = super()._forward_sam_heads(
                backbone_features=backbone_features,
                point_inputs=point_inputs,
                mask_inputs=mask_inputs,
                high_res_features=high_res_features,
                multimask_output=multimask_output,
            )
        finally:
            # Never leak a prompt into a later plain SAM-2 call (e.g. after an exception).
            self._language_embd = None
            self.pred_obj_scores = scores
        if scores and self.gate_pointer and not self.gate_masks:
            *masks, obj_ptr, object_score_logits = out
            out = (*masks, self._no_object_pointer(obj_ptr, object_score_logits),
                   object_score_logits)
        return out

    def _no_object_pointer(self, obj_ptr: Tensor, object_score_logits: Tensor) -> Tensor:
        """SAM-2's pointer substitution alone (the last lines of `_forward_sam_heads`):
        an object scored absent gets `no_obj_ptr` (softly with `soft_no_obj_ptr`)."""
        if not self.use_obj_ptrs_in_encoder:
            return obj_ptr  # SAM-2 builds no `no_obj_ptr` then and substitutes nothing
        if self.soft_no_obj_ptr:
            appearing = object_score_logits.sigmoid()
        else:
            appearing = (object_score_logits > 0).float()
        if self.fixed_no_obj_ptr:
            obj_ptr = appearing * obj_ptr
        return obj_ptr + (1 - appearing) * self.no_obj_ptr
