"""Sa2VA-MBA: the InternVL MLLM, SAM-2 grounding with Mask-Biased Attention, and the losses.

One training step (DESIGN.md "Data flow"):

    MLLM(input_ids, pixel_values) -> last hidden states (B, L, H)
    [SEG] hidden -> text_hidden_fcs -> SAM-2 prompt (one per object)
    expression (+ [SEG]) hiddens -> text_token_fcs -> F_t (MBA keys/values, TMC sentence)
    SAM-2 encoder(g_pixel_values) -> F_v -> pass 1 -> MBA -> pass 2 -> mask logits
    losses: LLM text CE + MPRCMALoss (BCE, Dice, TMC, boundary)

Every (object, frame) pair is one row of the grounding batch, segmented without memory as
Sa2VA trains; the rows of one object are its frames in order, and their object index goes
to the grounding as `track_index` (read only by a temporal MBA, `uses_tracks`). With
`grounding.mba = None` and a criterion without TMC and boundary terms, the model is exactly
Sa2VA (one decoder pass) and builds no `text_token_fcs`.

Batch contract (`data` dict, produced by the collate function of the datasets):
    input_ids (B, L) int64; attention_mask (B, L); labels (B, L) int64 (-100 = ignored);
    pixel_values (T, 3, 448, 448) MLLM tiles of the batch or None; image_flags (T,) optional;
    g_pixel_values: list of B tensors (F_i, 3, S, S), SAM-2 frames (F_i = 1 for an image);
    masks: list of B bool tensors (O_i, F_i, H_i, W_i) (or (O_i, H_i, W_i) for an image),
        ground truth of each object on each SAM-2 frame, at any resolution;
    expression_spans: list of B lists of O_i (start, end) spans of the expressions in
        input_ids (needed unless text_tokens == "seg");
    sentence_ids: list of B int64 tensors (O_i,), optional; equal ids = equal sentences
        (not TMC negatives). Default: every object its own id.
A sample without masks (chat data) has masks[i] of shape (0, 0, 1, 1) and
g_pixel_values[i] of shape (0, 3, S, S); g_pixel_values is None when no sample of the
batch has masks (`mpr_cma.datasets.sa2va_collate` builds exactly this).
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import Tensor, nn
from transformers import PreTrainedTokenizerBase

from mpr_cma.models.grounding import SAM2Grounding
from mpr_cma.models.mllm.internvl import InternVLChatModel, load_internvl_checkpoint
from mpr_cma.models.mllm.tokenizer import (
    SEG_TOKEN,
    add_special_tokens,
    load_tokenizer,
    tiny_tokenizer_path,
)
from mpr_cma.models.text_tokens import (
    TEXT_TOKEN_CHOICES,
    gather_text_tokens,
    masked_mean,
    seg_positions,
)
from mpr_cma.registry import MODELS

DEFAULT_LORA = dict(r=128, alpha=256, dropout=0.05)
# Where the mask losses compare prediction and ground truth (see `Sa2VAMBA`).
GT_MASK_SIZES = ("pred", "input")


def _build(module: nn.Module | dict | None, name: str) -> nn.Module | None:
    if module is None or isinstance(module, nn.Module):
        return module
    if isinstance(module, dict):
        return MODELS.build(module)
    raise TypeError(f"`{name}` must be a module or a config dict, got {type(module).__name__}")


def _projection(in_dim: int, out_dim: int) -> nn.Sequential:
    """Sa2VA's text_hidden_fcs shape: Linear-ReLU-Linear-Dropout(0)."""
    return nn.Sequential(nn.Linear(in_dim, in_dim), nn.ReLU(inplace=True),
                         nn.Linear(in_dim, out_dim), nn.Dropout(0.0))


@MODELS.register_module()
class Sa2VAMBA(BaseModel):
    """Sa2VA with Mask-Biased Attention, TMC and boundary losses.

    Args:
        mllm: `InternVLChatModel` or its config dict.
        grounding: `SAM2Grounding` (with or without `mba`) or its config dict.
        tokenizer: a tokenizer, a local tokenizer folder, or "tiny" for the shipped one.
        criterion: `MPRCMALoss` (or config dict; its TMC input widths default to SAM-2's
            width) for the mask terms.
        mllm_pretrained: InternVL2_5-1B HF folder loaded into the MLLM (strictly) before
            the special tokens are added; None keeps the MLLM's current weights.
        text_tokens: F_t for MBA/TMC: "expression+seg" (ours, default), "expression", "seg".
        lora: LoRA settings for the LLM (Sa2VA: r 128, alpha 256, dropout 0.05); None = no
            LoRA (the LLM stays fully trainable).
        freeze_vision: freeze InternViT (Sa2VA does).
        llm_loss_weight: weight of the LLM's text cross-entropy (Sa2VA: 1).
        gt_mask_size: the grid of the ground truth the mask losses read. "pred" (Sa2VA,
            `models/sa2va.py` `forward`): each (H, W) mask is resized (nearest) to the
            decoder's low-res logits, 4h x 4w (256 x 256 for S = 1024), and the points are
            sampled from both at that size; "input": resized (nearest) to the SAM-2 input
            S x S, so the sampled targets keep the finer boundary (the low-res logits are
            sampled at the same normalised points either way).
        llm_gradient_checkpointing: recompute the LLM's decoder layers in backward
            (non-reentrant) instead of storing their activations. Sa2VA always does (xtuner's
            InternVL_V1_5 calls `gradient_checkpointing_enable` on the LLM); the ViT is
            frozen and not checkpointed. Same gradients, less memory, one more LLM forward.
        prompt_init_gain: None (Sa2VA) keeps PyTorch's default init of text_hidden_fcs; a
            float g multiplies its last Linear's initial weights by g and zeroes its bias.
            For a random-init LLM (the tiny demo) the default init gives SAM-2 prompts of
            std ~0.2, five times below SAM-2's own prompt tokens (~1), and SAM-2 learns to
            read prompts of that scale far later (docs/demo.md). Init only: loading a
            checkpoint overrides it.
    """

    def __init__(
        self,
        mllm: nn.Module | dict,
        grounding: nn.Module | dict,
        tokenizer: PreTrainedTokenizerBase | str = "tiny",
        criterion: nn.Module | dict | None = None,
        mllm_pretrained: str | None = None,
        text_tokens: str = "expression+seg",
        lora: dict | None = DEFAULT_LORA,
        freeze_vision: bool = True,
        llm_loss_weight: float = 1.0,
        gt_mask_size: str = "pred",
        llm_gradient_checkpointing: bool = False,
        prompt_init_gain: float | None = None,
    ):
        super().__init__()
        if text_tokens not in TEXT_TOKEN_CHOICES:
            raise ValueError(f"text_tokens must be one of {TEXT_TOKEN_CHOICES}, got "
                             f"{text_tokens!r}")
        if gt_mask_size not in GT_MASK_SIZES:
            raise ValueError(f"gt_mask_size must be one of {GT_MASK_SIZES}, got "
                             f"{gt_mask_size!r}")
        self.gt_mask_size = gt_mask_size
        self.mllm: InternVLChatModel = _build(mllm, "mllm")
        self.grounding: SAM2Grounding = _build(grounding, "grounding")
        width = self.grounding.hidden_dim
        if criterion is None or isinstance(criterion, dict):
            # TMC pools SAM-2 features and text tokens projected to SAM-2's width.
            criterion = {"type": "MPRCMALoss", "tmc_visual_dim": width, "tmc_text_dim": width,
                         **(criterion or {})}
        self.criterion = _build(criterion, "criterion")
        if mllm_pretrained is not None:
            load_internvl_checkpoint(self.mllm, mllm_pretrained)
        if isinstance(tokenizer, str):
            tokenizer = load_tokenizer(tiny_tokenizer_path() if tokenizer == "tiny" else tokenizer)
        self.tokenizer = tokenizer
        added = add_special_tokens(tokenizer)
        self.seg_token_id = added.ids[SEG_TOKEN]
        if len(tokenizer) > self.mllm.llm_config.vocab_size:
            self.mllm.resize_token_embeddings(len(tokenizer))
        if freeze_vision:
            self.mllm.freeze_vision()
        if llm_gradient_checkpointing:
            self.mllm.llm_gradient_checkpointing_enable()
        if lora is not None:
            self.mllm.apply_lora(**lora)
        hidden = self.mllm.llm_config.hidden_size
        self.text_hidden_fcs = _projection(hidden, width)
        self.text_tokens = text_tokens
        self.uses_text_tokens = self.grounding.mba is not None or self.criterion.uses_tmc
        if prompt_init_gain is not None:
            last = self.text_hidden_fcs[2]
            with torch.no_grad():
                last.weight.mul_(float(prompt_init_gain))
                last.bias.zero_()
        # New parameters of the method live under their own prefix (not in Sa2VA's keys).
        self.text_token_fcs = _projection(hidden, width) if self.uses_text_tokens else None
        self.llm_loss_weight = llm_loss_weight

    # ------------------------------------------------------------------ pieces
    def object_text(
        self, hidden: Tensor, input_ids: Tensor, num_objects: Sequence[int],
        expression_spans: Sequence | None,
    ) -> dict[str, Tensor | None]:
        """SAM-2 prompts and (if used) MBA text tokens and TMC sentence embeddings.

        Args:
            hidden: (B, L, H) last LLM hidden states. input_ids: (B, L).
            num_objects: O_i per sample. expression_spans: see the batch contract.

        Returns:
            dict with "prompt" (O, 1, C), "text" (O, N, C) or None, "text_mask" (O, N) or
            None, "sentence" (O, C) or None, O = sum O_i.
        """
        positions = seg_positions(input_ids, self.seg_token_id, num_objects)
        seg_hidden = torch.cat([hidden[i, p] for i, p in enumerate(positions)])
        out = {"prompt": self.text_hidden_fcs(seg_hidden).unsqueeze(1), "text": None,
               "text_mask": None, "sentence": None}
        if self.text_token_fcs is not None:
            tokens, mask = gather_text_tokens(hidden, positions, expression_spans,
                                              self.text_tokens)
            text = self.text_token_fcs(tokens)
            out.update(text=text, text_mask=mask, sentence=masked_mean(text, mask))
        return out

    def ground_truth_size(self, pred_masks: Tensor) -> tuple[int, int]:
        """(h, w) of the loss's ground truth for (R, 1, 4h, 4w) logits (`gt_mask_size`)."""
        if self.gt_mask_size == "pred":
            return tuple(pred_masks.shape[-2:])
        return (self.grounding.image_size, self.grounding.image_size)

    @staticmethod
    def _ground_truth_rows(masks: Sequence[Tensor], size: tuple[int, int]) -> list[Tensor]:
        """Per sample, (O_i * F_i, *size) float GT in (object, frame) row order, resized by
        nearest neighbour from each mask's own (H_i, W_i)."""
        rows = []
        for i, m in enumerate(masks):
            if m.dim() == 3:
                m = m.unsqueeze(1)
            if m.dim() != 4:
                raise ValueError(f"masks[{i}] must be (O, F, H, W) or (O, H, W), got "
                                 f"{tuple(m.shape)}")
            flat = m.flatten(0, 1).float().unsqueeze(1)
            rows.append(F.interpolate(flat, size=tuple(size), mode="nearest")[:, 0])
        return rows

    # ------------------------------------------------------------------ training
    def forward(self, data: dict, data_samples=None, mode: str = "loss"):
        """mmengine/xtuner entry point: mode "loss" returns the loss dict."""
        if mode != "loss":
            raise ValueError(f"Sa2VAMBA.forward supports mode='loss'; use "
                             f"mpr_cma.models.inference for prediction (got {mode!r})")
        return self.compute_loss(data)

    def run_batch(self, data: dict) -> dict:
        """MLLM forward and two-pass grounding of every (object, frame) row of a batch.

        Returns:
            dict with "llm" (the MLLM output), "num_objects" [O_i], and when the batch has
            objects: "rows" (object / frame index per row), "text" (`object_text`) and
            "grounding" (`SAM2Grounding.segment_images` output; "pred_masks" (R, 1, 4h, 4w)).
        """
        input_ids = data["input_ids"]
        out = self.mllm(input_ids, data.get("pixel_values"), data.get("attention_mask"),
                        data.get("labels"), image_flags=data.get("image_flags"),
                        output_hidden_states=True)
        masks = data.get("masks") or []
        num_objects = [m.shape[0] for m in masks] or [0] * input_ids.shape[0]
        result = {"llm": out, "num_objects": num_objects}
        if sum(num_objects) == 0:
            return result
        hidden = out.hidden_states[-1]
        text = self.object_text(hidden, input_ids, num_objects, data.get("expression_spans"))
        frames = [g.shape[0] for g in data["g_pixel_values"]]
        rows = self._row_index(num_objects, frames, masks, input_ids.device)
        features = self.grounding.encode(torch.cat(list(data["g_pixel_values"])))
        pick = rows["object"]
        result.update(rows=rows, text=text, grounding=self.grounding.segment_images(
            features, rows["frame"], text["prompt"][pick],
            None if text["text"] is None else text["text"][pick],
            None if text["text_mask"] is None else text["text_mask"][pick],
            track_index=pick))
        return result

    def compute_loss(self, data: dict) -> dict[str, Tensor]:
        """Loss terms of one batch (see the module docstring for `data`).

        Returns:
            {"loss_llm", "loss_mask", "loss_dice"[, "loss_tmc"][, "loss_bound"]}, weighted
            fp32 scalars; their sum is the training loss.
        """
        run = self.run_batch(data)
        losses = {"loss_llm": self.llm_loss_weight * run["llm"].loss.float()}
        if "grounding" not in run:
            return {**losses, **self._placeholder_mask_losses(run["llm"].hidden_states[-1])}
        pick, text, result = run["rows"]["object"], run["text"], run["grounding"]
        gt = torch.cat(self._ground_truth_rows(data["masks"],
                                               self.ground_truth_size(result["pred_masks"])))
        sentence_ids = self._sentence_ids(data.get("sentence_ids"), run["num_objects"], pick)
        losses.update(self.criterion(
            result["pred_masks"][:, 0], gt, features=result["decoder_features"],
            text_embeds=None if text["sentence"] is None else text["sentence"][pick],
            sentence_ids=sentence_ids))
        return losses

    def _placeholder_mask_losses(self, hidden: Tensor) -> dict[str, Tensor]:
        """Mask loss terms of a batch without objects (chat data): exactly 0.

        Like Sa2VA's pseudo data, one placeholder object (blank frame, first token as text)
        runs through the whole grounding path with its losses multiplied by 0. Every
        trainable parameter then gets a (zero) gradient and every rank joins the same
        collectives (DeepSpeed's gradient reduction, TMC's cross-rank gather), so a rank
        that drew only chat samples cannot hang the others. Its TMC row has sentence id -1:
        it is no negative for other ranks' objects.
        """
        size = self.grounding.image_size
        frames = hidden.new_zeros(1, 3, size, size, dtype=torch.float32)
        token = hidden[:1, :1]  # (1, 1, H)
        prompt = self.text_hidden_fcs(token)
        text = self.text_token_fcs(token) if self.text_token_fcs is not None else None
        text_mask = torch.ones(1, 1, dtype=torch.bool, device=hidden.device)
        result = self.grounding.segment_images(
            self.grounding.encode(frames), torch.zeros(1, dtype=torch.long,
                                                       device=hidden.device),
            prompt, text, text_mask if text is not None else None)
        gt = torch.zeros(1, *self.ground_truth_size(result["pred_masks"]), device=hidden.device)
        losses = self.criterion(
            result["pred_masks"][:, 0], gt, features=result["decoder_features"],
            text_embeds=None if text is None else text[:, 0],
            sentence_ids=torch.full((1,), -1, dtype=torch.long, device=hidden.device))
        return {name: value * 0.0 for name, value in losses.items()}

    @staticmethod
    def _row_index(num_objects: Sequence[int], frames: Sequence[int], masks: Sequence[Tensor],
                   device: torch.device) -> dict[str, Tensor]:
        """Grounding rows in (sample, object, frame) order: object and frame index per row."""
        if len(frames) != len(num_objects):
            raise ValueError(f"g_pixel_values has {len(frames)} samples, masks has "
                             f"{len(num_objects)}")
        obj, frame = [], []
        obj_offset = frame_offset = 0
        for i, (o, f) in enumerate(zip(num_objects, frames, strict=True)):
            mask_frames = masks[i].shape[1] if masks[i].dim() == 4 else 1
            if o and mask_frames != f:
                raise ValueError(f"sample {i}: masks cover {mask_frames} frames but "
                                 f"g_pixel_values has {f}")
            for j in range(o):
                obj += [obj_offset + j] * f
                frame += list(range(frame_offset, frame_offset + f))
            obj_offset += o
            frame_offset += f
        return {"object": torch.tensor(obj, dtype=torch.long, device=device),
                "frame": torch.tensor(frame, dtype=torch.long, device=device)}

    @staticmethod
    def _sentence_ids(given: Sequence[Tensor] | None, num_objects: Sequence[int],
                      pick: Tensor) -> Tensor:
        """Per-row sentence ids: the given per-object ids, or one id per object."""
        if given is None:
            return pick.clone()
        ids = torch.cat([torch.as_tensor(g, dtype=torch.long) for g in given]).to(pick.device)
        if ids.numel() != sum(num_objects):
            raise ValueError(f"sentence_ids hold {ids.numel()} ids for {sum(num_objects)} "
                             "objects")
        return ids[pick]
