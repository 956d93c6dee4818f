"""InternVL-2.5 chat MLLM: InternViT -> pixel shuffle -> MLP projector -> Qwen2 LLM.

`InternVLChatModel` has the submodules `vision_model`, `mlp1` and `language_model`, so its
state dict has exactly the keys of an InternVL2_5-1B checkpoint (`vision_model.*`,
`mlp1.{0,1,3}.*`, `language_model.model.*`, `language_model.lm_head.weight`) and of the
MLLM part of a Sa2VA-1B checkpoint. The LLM is `transformers.Qwen2ForCausalLM` built from a
`Qwen2Config` (no download, no trust_remote_code).

Images enter as 448 px tiles. Each tile gives 32 x 32 ViT patch tokens; pixel shuffle
(downsample ratio 0.5) folds every 2 x 2 block into one token of width 4 D, so a tile
becomes 16 x 16 = 256 tokens, projected by `mlp1` to the LLM width. The prompt holds one
`<IMG_CONTEXT>` token per vision token; their input embeddings are replaced, in order, by
the vision tokens.

Loading real weights: build the model, `load_internvl_checkpoint(model, folder)`, then
`resize_token_embeddings` for added special tokens, then `apply_lora` (LoRA renames the
LLM's keys, so load first).
"""

from pathlib import Path

from peft import LoraConfig, PeftModel, get_peft_model
from torch import Tensor, nn
from transformers import PreTrainedModel, Qwen2Config, Qwen2ForCausalLM
from transformers.modeling_outputs import CausalLMOutputWithPast

from mpr_cma.checkpoint.files import read_safetensors_folder
from mpr_cma.checkpoint.keys import load_strict
from mpr_cma.models.mllm.configs import internvl_preset
from mpr_cma.models.mllm.intern_vit import InternVisionModel
from mpr_cma.registry import MODELS


def pixel_shuffle(x: Tensor, scale_factor: float = 0.5, ps_version: str = "v2") -> Tensor:
    """InternVL's pixel shuffle (space-to-depth) on a token grid.

    With r = 1 / scale_factor, output token (i, j) is the concatenation over the r x r
    block of input tokens, row-major within the block: for r = 2 the channels are
    [x[2i, 2j], x[2i, 2j+1], x[2i+1, 2j], x[2i+1, 2j+1]]. This is what InternVL's
    view/permute sequence computes with ps_version 'v2'; 'v1' (InternVL 1.5) leaves the
    output grid transposed.

    Args:
        x: (N, H, W, C) grid of tokens, H and W divisible by r.
        scale_factor: 1 / block size (InternVL: 0.5).
        ps_version: 'v2' (InternVL 2 and later) or 'v1'.

    Returns:
        (N, H / r, W / r, C r^2) tensor, same dtype.
    """
    r = round(1 / scale_factor)
    if abs(r * scale_factor - 1) > 1e-6:
        raise ValueError(f"1 / scale_factor must be an integer, got scale_factor={scale_factor}")
    n, h, w, c = x.shape
    if h % r or w % r:
        raise ValueError(f"token grid {h}x{w} is not divisible by the block size {r}")
    blocks = x.reshape(n, h // r, r, w // r, r, c).permute(0, 1, 3, 2, 4, 5)
    out = blocks.reshape(n, h // r, w // r, r * r * c)
    if ps_version == "v1":
        return out.transpose(1, 2).contiguous()
    if ps_version != "v2":
        raise ValueError(f"ps_version must be 'v1' or 'v2', got {ps_version!r}")
    return out


def llm_linear_module_names(llm: nn.Module) -> list[str]:
    """Names (last component) of the LLM's nn.Linear layers except the output head.

    This is xtuner's `find_all_linear_names`, which Sa2VA uses for LoRA when its LoraConfig
    names no target modules; for Qwen2 it gives q/k/v/o_proj and gate/up/down_proj.
    """
    names = {name.rsplit(".", 1)[-1] for name, mod in llm.named_modules()
             if isinstance(mod, nn.Linear) and name}
    return sorted(names - {"lm_head", "output_layer"})


def _build_llm(llm: PreTrainedModel | Qwen2Config | dict) -> PreTrainedModel:
    if isinstance(llm, PreTrainedModel):
        return llm
    config = llm if isinstance(llm, Qwen2Config) else Qwen2Config(**llm)
    return Qwen2ForCausalLM(config)


@MODELS.register_module()
class InternVLChatModel(nn.Module):
    """InternVL-2.5 MLLM for training (text CE loss + hidden states for [SEG] decoding).

    Args:
        vision: a built `InternVisionModel` or its keyword arguments.
        llm: a built causal LM, a `Qwen2Config`, or Qwen2Config keyword arguments.
        img_context_token_id: token id of `<IMG_CONTEXT>` in the tokenizer.
        downsample_ratio: pixel-shuffle ratio (0.5: 2 x 2 patches -> 1 token).
        select_layer: which ViT hidden state feeds the projector (-1 = last layer, as in
            InternVL 2.5; other values index the hidden-states tuple whose entry 0 is the
            patch embedding).
        ps_version: pixel-shuffle version, 'v2' for InternVL 2 / 2.5.
    """

    def __init__(
        self,
        vision: InternVisionModel | dict,
        llm: PreTrainedModel | Qwen2Config | dict,
        img_context_token_id: int,
        downsample_ratio: float = 0.5,
        select_layer: int = -1,
        ps_version: str = "v2",
    ):
        super().__init__()
        self.vision_model = vision if isinstance(vision, nn.Module) else InternVisionModel(**vision)
        self.language_model = _build_llm(llm)
        self.img_context_token_id = img_context_token_id
        self.downsample_ratio = downsample_ratio
        self.select_layer = select_layer
        self.ps_version = ps_version
        vit_width = self.vision_model.hidden_size * round(1 / downsample_ratio) ** 2
        llm_width = self.language_model.config.hidden_size
        self.mlp1 = nn.Sequential(
            nn.LayerNorm(vit_width),
            nn.Linear(vit_width, llm_width),
            nn.GELU(),
            nn.Linear(llm_width, llm_width),
        )

    @property
    def num_image_token(self) -> int:
        """LLM tokens per `image_size` tile (256 for 448 px, patch 14, ratio 0.5)."""
        return round(self.vision_model.num_patches * self.downsample_ratio**2)

    @property
    def llm_config(self) -> Qwen2Config:
        return self.language_model.config

    def extract_feature(self, pixel_values: Tensor) -> Tensor:
        """Vision tokens of image tiles, projected to the LLM width.

        Args:
            pixel_values: (T, 3, S, S) normalised tiles (S = 448 for the 1B model).

        Returns:
            (T, (S / (2 p))^2, H_llm) tokens (256 per 448 px tile) in mlp1's dtype.
        """
        out = self.vision_model(pixel_values, output_hidden_states=self.select_layer != -1)
        feats = out.last_hidden_state if self.select_layer == -1 else \
            out.hidden_states[self.select_layer]
        feats = feats[:, 1:]  # drop CLS
        side = round(feats.shape[1] ** 0.5)
        if side * side != feats.shape[1]:
            raise ValueError(f"extract_feature expects square tiles, got {feats.shape[1]} patches")
        grid = feats.reshape(feats.shape[0], side, side, -1)
        grid = pixel_shuffle(grid, self.downsample_ratio, self.ps_version)
        tokens = grid.reshape(grid.shape[0], -1, grid.shape[-1])
        return self.mlp1(tokens.to(self.mlp1[0].weight.dtype))

    def embed_inputs(
        self, input_ids: Tensor, pixel_values: Tensor | None = None,
        image_flags: Tensor | None = None, vision_embeds: Tensor | None = None,
    ) -> Tensor:
        """Token embeddings with every `<IMG_CONTEXT>` replaced by a vision token.

        Args:
            input_ids: (B, L) int64.
            pixel_values: (T, 3, S, S) tiles of the whole batch, in prompt order, or None.
            image_flags: (T,) or (T, 1), 1 = the tile is real, 0 = a dummy tile of a
                text-only sample (dropped). None = all real.
            vision_embeds: (T, n, H_llm) `extract_feature` output of the tiles, given in
                place of pixel_values, so that several passes over one image (inference:
                generation, then the teacher-forced [SEG] pass) run the ViT once.

        Returns:
            (B, L, H_llm) input embeddings.

        Raises:
            ValueError: the number of `<IMG_CONTEXT>` tokens differs from the number of
                vision tokens.
        """
        embeds = self.language_model.get_input_embeddings()(input_ids)
        selected = input_ids == self.img_context_token_id
        n_context = int(selected.sum())
        if pixel_values is not None and vision_embeds is not None:
            raise ValueError("give pixel_values or vision_embeds, not both")
        if pixel_values is None and vision_embeds is None:
            if n_context:
                raise ValueError(f"input_ids hold {n_context} <IMG_CONTEXT> tokens (id "
                                 f"{self.img_context_token_id}) but no pixel_values were given")
            return embeds
        vit = self.extract_feature(pixel_values) if vision_embeds is None else vision_embeds
        if image_flags is not None:
            vit = vit[image_flags.reshape(-1) == 1]
        vit_tokens = vit.reshape(-1, vit.shape[-1]).to(embeds.dtype)
        if n_context != vit_tokens.shape[0]:
            raise ValueError(
                f"input_ids hold {n_context} <IMG_CONTEXT> tokens (id "
                f"{self.img_context_token_id}) but the images give {vit_tokens.shape[0]} "
                f"vision tokens ({vit.shape[0]} tiles x {vit.shape[1]} tokens per tile)")
        if n_context == 0:
            # No tile is used (text-only batch with dummy tiles): keep the projector in the
            # graph with a zero contribution, so DDP sees a gradient for every parameter.
            return embeds + vit.sum() * 0.0
        return embeds.masked_scatter(selected.unsqueeze(-1), vit_tokens)

    def forward(
        self,
        input_ids: Tensor,
        pixel_values: Tensor | None = None,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        position_ids: Tensor | None = None,
        image_flags: Tensor | None = None,
        output_hidden_states: bool = True,
        vision_embeds: Tensor | None = None,
    ) -> CausalLMOutputWithPast:
        """Training forward: vision tokens in place of `<IMG_CONTEXT>`, then the LLM.

        Args:
            input_ids: (B, L) int64 token ids.
            pixel_values: (T, 3, S, S) float tiles of the batch (see `embed_inputs`).
            attention_mask: (B, L) 1 = real token, 0 = padding; None = all real.
            labels: (B, L) int64 targets, -100 = ignored; the LLM shifts them by one.
            position_ids: (B, L) int64, None = 0..L-1.
            image_flags: (T,) or (T, 1) tile flags (see `embed_inputs`).
            output_hidden_states: return the LLM hidden states (num_layers + 1 tensors of
                (B, L, H_llm); the last one, after the final norm, feeds [SEG] decoding).
            vision_embeds: precomputed vision tokens in place of pixel_values (see
                `embed_inputs`).

        Returns:
            transformers CausalLMOutputWithPast: loss (fp32 scalar, if labels), logits
            (B, L, vocab), hidden_states.
        """
        embeds = self.embed_inputs(input_ids, pixel_values, image_flags, vision_embeds)
        return self.language_model(
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            labels=labels,
            use_cache=False,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )

    def resize_token_embeddings(self, num_tokens: int, **kwargs) -> nn.Embedding:
        """Resize the LLM's input embeddings and lm_head (after adding special tokens).

        On the meta device (parameter counting) the new rows cannot be drawn from the old
        rows' mean and covariance, as transformers does by default; they stay unset.
        """
        if self.language_model.get_input_embeddings().weight.is_meta:
            kwargs.setdefault("mean_resizing", False)
        return self.language_model.resize_token_embeddings(num_tokens, **kwargs)

    def freeze_vision(self) -> None:
        """Freeze InternViT, as Sa2VA does (it stays in the module's train/eval mode)."""
        self.vision_model.requires_grad_(False)

    def gradient_checkpointing_enable(self) -> None:
        """Recompute ViT and LLM layer activations in backward (non-reentrant)."""
        self.vision_model.encoder.gradient_checkpointing = True
        self.llm_gradient_checkpointing_enable()

    def llm_gradient_checkpointing_enable(self) -> None:
        """Recompute the LLM's decoder-layer activations in backward (non-reentrant), as
        Sa2VA does; call before `apply_lora` (peft keeps the flag of the base model)."""
        self.language_model.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False})

    def apply_lora(
        self,
        r: int = 128,
        alpha: int = 256,
        dropout: float = 0.05,
        target_modules: list[str] | None = None,
        train_embeddings: bool = True,
    ) -> list[str]:
        """Wrap the LLM with peft LoRA, as Sa2VA does (r 128, alpha 256, dropout 0.05).

        peft freezes the LLM's base weights. Sa2VA then re-enables the input embeddings and
        lm_head (its new special tokens must be learned): `train_embeddings`. mlp1 and the
        ViT are not touched (call `freeze_vision` for the frozen InternViT).

        Args:
            r: LoRA rank.
            alpha: LoRA alpha (scaling alpha / r).
            dropout: dropout on the LoRA branch input.
            target_modules: module names to adapt; None = every linear layer of the LLM
                except lm_head (Sa2VA's choice via xtuner's find_all_linear_names).
            train_embeddings: keep embed_tokens and lm_head trainable.

        Returns:
            The sorted target module names.
        """
        if isinstance(self.language_model, PeftModel):
            raise RuntimeError("apply_lora: the language model already has LoRA adapters")
        targets = sorted(target_modules or llm_linear_module_names(self.language_model))
        config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, bias="none",
                            task_type="CAUSAL_LM", target_modules=targets)
        self.language_model = get_peft_model(self.language_model, config)
        if train_embeddings:
            base = self.language_model.get_base_model()
            base.get_input_embeddings().requires_grad_(True)
            base.get_output_embeddings().requires_grad_(True)
        return targets


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Parameter counts (shared tensors counted once; works on meta-device models).

    Returns:
        dict(total=..., trainable=...) in number of scalars.
    """
    params = list(model.parameters())
    return dict(total=sum(p.numel() for p in params),
                trainable=sum(p.numel() for p in params if p.requires_grad))


def load_internvl_checkpoint(
    model: nn.Module, folder: str | Path, ignore_prefixes: tuple[str, ...] = ()
) -> None:
    """Strictly load an InternVL HF folder (e.g. InternVL2_5-1B) into `model`.

    Args:
        model: a materialised (not meta) `InternVLChatModel`, before `apply_lora`.
        folder: local HF folder with model.safetensors or a sharded index.
        ignore_prefixes: checkpoint key prefixes to skip, e.g. ("grounding_encoder.",
            "text_hidden_fcs.") to take only the MLLM out of a Sa2VA-1B folder.

    Raises:
        FileNotFoundError: missing folder or file (named).
        CorruptCheckpointError: a weights file cannot be parsed (named).
        CheckpointKeyError: missing/unexpected keys or shape mismatches (listed).
        ValueError: the model has meta tensors (nothing to copy into).
    """
    if any(p.is_meta for p in model.parameters()):
        raise ValueError("load_internvl_checkpoint: the model is on the meta device; build it "
                         "on a real device first")
    state = {k: v for k, v in read_safetensors_folder(folder).items()
             if not k.startswith(ignore_prefixes)}
    load_strict(model, state, folder)


__all__ = [
    "InternVLChatModel",
    "count_parameters",
    "llm_linear_module_names",
    "load_internvl_checkpoint",
    "pixel_shuffle",
]


@MODELS.register_module(name="InternVLFromPreset")
def build_internvl_from_preset(preset: str = "internvl2_5_1b", **overrides) -> InternVLChatModel:
    """`InternVLChatModel` from a named preset (configs: `dict(type="InternVLFromPreset",
    preset="tiny", llm=dict(num_hidden_layers=4))`); see `configs.internvl_preset`."""
    return InternVLChatModel(**internvl_preset(preset, **overrides))
