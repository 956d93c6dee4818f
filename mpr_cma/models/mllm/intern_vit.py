"""InternViT, the vision tower of InternVL-2.5, written for this project.

The module and parameter names reproduce OpenGVLab's `modeling_intern_vit.py`, so that the
`vision_model.*` tensors of an InternVL2_5-1B (InternViT-300M-448px-V2_5) checkpoint load
with strict key matching:

    embeddings.class_embedding             (1, 1, D)
    embeddings.patch_embedding.{weight,bias}   Conv2d(3, D, 14, stride 14)
    embeddings.position_embedding          (1, 1 + (448 / 14) ** 2, D)
    encoder.layers.N.attn.qkv.{weight,bias}    Linear(D, 3 D)
    encoder.layers.N.attn.proj.{weight,bias}   Linear(D, D)
    encoder.layers.N.{ls1,ls2}             (D,) layer scales
    encoder.layers.N.{norm1,norm2}.{weight,bias}   LayerNorm(D, eps 1e-6)
    encoder.layers.N.mlp.{fc1,fc2}.{weight,bias}   Linear(D, I), Linear(I, D)

Each layer is pre-norm: x + drop_path(ls1 * attn(norm1(x))), then the same with the MLP.
The 300M model uses LayerNorm, qkv bias and no q/k normalisation; RMSNorm and q/k
normalisation (the 6B model's choices) are supported because they cost a few lines.
"""

from typing import Literal

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor, nn
from transformers.modeling_outputs import BaseModelOutputWithPooling

NormType = Literal["layer_norm", "rms_norm"]
AttnImpl = Literal["sdpa", "eager"]


class InternRMSNorm(nn.Module):
    """RMSNorm computed in fp32 (InternViT-6B's norm); key `weight` like the original."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        dtype = x.dtype
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(dtype)


def _make_norm(norm_type: NormType, dim: int, eps: float) -> nn.Module:
    if norm_type == "layer_norm":
        return nn.LayerNorm(dim, eps=eps)
    if norm_type == "rms_norm":
        return InternRMSNorm(dim, eps=eps)
    raise ValueError(f"norm_type must be 'layer_norm' or 'rms_norm', got {norm_type!r}")


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch of a sample with probability p."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        # Scale the kept samples so the expected output equals the eval-mode output.
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p:.3f}"


class InternVisionEmbeddings(nn.Module):
    """Patch embedding + CLS token + learned absolute positions.

    The position table is learned for `image_size`; other input sizes get it resized
    bicubically (align_corners=False, in fp32), which is what InternVL does, so tiles of
    any multiple of `patch_size` work with the 448 px weights.
    """

    def __init__(self, hidden_size: int, image_size: int, patch_size: int, num_channels: int = 3):
        super().__init__()
        if image_size % patch_size != 0:
            raise ValueError(f"image_size {image_size} not a multiple of patch_size {patch_size}")
        self.image_size = image_size
        self.patch_size = patch_size
        self.grid = image_size // patch_size
        self.class_embedding = nn.Parameter(torch.empty(1, 1, hidden_size))
        self.patch_embedding = nn.Conv2d(num_channels, hidden_size, patch_size, stride=patch_size)
        self.position_embedding = nn.Parameter(torch.empty(1, 1 + self.grid**2, hidden_size))
        # Small random init for tiny from-scratch models; real runs load the checkpoint.
        nn.init.normal_(self.class_embedding, std=0.02)
        nn.init.normal_(self.position_embedding, std=0.02)

    def patch_position_embedding(self, height: int, width: int) -> Tensor:
        """Position embeddings of the patches for a (height x width) patch grid.

        Returns:
            (1, height * width, D) tensor in the dtype of the parameter.
        """
        pos = self.position_embedding[:, 1:]
        if (height, width) == (self.grid, self.grid):
            return pos  # bicubic resize to the same size is the identity; skip it
        dim = pos.shape[-1]
        grid = pos.float().reshape(1, self.grid, self.grid, dim).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(height, width), mode="bicubic", align_corners=False)
        return grid.flatten(2).transpose(1, 2).to(pos.dtype)

    def forward(self, pixel_values: Tensor) -> Tensor:
        """Embed images.

        Args:
            pixel_values: (B, C, H, W) float images, H and W multiples of `patch_size`.

        Returns:
            (B, 1 + (H / p) * (W / p), D) tokens, CLS first, in the dtype of the weights.
        """
        dtype = self.patch_embedding.weight.dtype
        patches = self.patch_embedding(pixel_values.to(dtype))  # (B, D, h, w)
        batch, _, height, width = patches.shape
        patches = patches.flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(dtype).expand(batch, -1, -1)
        pos = torch.cat(
            [self.position_embedding[:, :1], self.patch_position_embedding(height, width)], dim=1
        )
        return torch.cat([cls, patches], dim=1) + pos.to(dtype)


class InternAttention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (key names `qkv`, `proj`)."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        qkv_bias: bool = True,
        qk_normalization: bool = False,
        norm_eps: float = 1e-6,
        attention_dropout: float = 0.0,
        dropout: float = 0.0,
        attn_implementation: AttnImpl = "sdpa",
    ):
        super().__init__()
        if hidden_size % num_heads != 0:
            raise ValueError(f"hidden_size {hidden_size} not divisible by num_heads {num_heads}")
        if attn_implementation not in ("sdpa", "eager"):
            raise ValueError(f"attn_implementation must be 'sdpa' or 'eager', got "
                             f"{attn_implementation!r}")
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.attention_dropout = attention_dropout
        self.attn_implementation = attn_implementation
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size, bias=qkv_bias)
        self.qk_normalization = qk_normalization
        if qk_normalization:
            # Normalised over the full width (all heads together), as InternViT-6B does.
            self.q_norm = InternRMSNorm(hidden_size, eps=norm_eps)
            self.k_norm = InternRMSNorm(hidden_size, eps=norm_eps)
        self.proj = nn.Linear(hidden_size, hidden_size)
        self.proj_drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """Self-attention over (B, N, D) tokens; returns (B, N, D)."""
        batch, length, width = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # each (B, N, D), heads contiguous in D
        if self.qk_normalization:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = (t.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)
                   for t in (q, k, v))
        p_drop = self.attention_dropout if self.training else 0.0
        if self.attn_implementation == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p_drop)
        else:
            attn = (q * self.head_dim**-0.5) @ k.transpose(-2, -1)
            attn = F.dropout(attn.softmax(dim=-1), p=p_drop)
            out = attn @ v
        out = out.transpose(1, 2).reshape(batch, length, width)
        return self.proj_drop(self.proj(out))


class InternMLP(nn.Module):
    """fc1 -> GELU (exact, erf form: transformers' 'gelu') -> fc2."""

    def __init__(self, hidden_size: int, intermediate_size: int):
        super().__init__()
        self.fc1 = nn.Linear(hidden_size, intermediate_size)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(intermediate_size, hidden_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class InternVisionEncoderLayer(nn.Module):
    """Pre-norm transformer block with layer scale and stochastic depth."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        intermediate_size: int,
        drop_path: float = 0.0,
        norm_type: NormType = "layer_norm",
        norm_eps: float = 1e-6,
        layer_scale_init: float = 0.1,
        **attn_kwargs,
    ):
        super().__init__()
        self.attn = InternAttention(hidden_size, num_heads, norm_eps=norm_eps, **attn_kwargs)
        self.mlp = InternMLP(hidden_size, intermediate_size)
        self.norm1 = _make_norm(norm_type, hidden_size, norm_eps)
        self.norm2 = _make_norm(norm_type, hidden_size, norm_eps)
        self.ls1 = nn.Parameter(torch.full((hidden_size,), float(layer_scale_init)))
        self.ls2 = nn.Parameter(torch.full((hidden_size,), float(layer_scale_init)))
        self.drop_path1 = DropPath(drop_path)
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path1(self.attn(self.norm1(x)) * self.ls1)
        return x + self.drop_path2(self.mlp(self.norm2(x)) * self.ls2)


class InternVisionEncoder(nn.Module):
    """Stack of `InternVisionEncoderLayer` (key prefix `layers.N`)."""

    def __init__(self, num_layers: int, drop_path_rate: float = 0.0, **layer_kwargs):
        super().__init__()
        # Stochastic-depth rate grows linearly from 0 (first layer) to drop_path_rate (last).
        rates = torch.linspace(0, drop_path_rate, num_layers, device="cpu").tolist()
        self.layers = nn.ModuleList(
            InternVisionEncoderLayer(drop_path=rate, **layer_kwargs) for rate in rates
        )
        self.gradient_checkpointing = False

    def forward(self, x: Tensor, output_hidden_states: bool = False) -> tuple[Tensor, tuple]:
        """Run all layers on (B, N, D) tokens.

        Returns:
            The last hidden state (B, N, D) and, if requested, the tuple of the input and
            every layer's output (length num_layers + 1), else an empty tuple.
        """
        states = (x,) if output_hidden_states else ()
        for layer in self.layers:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(layer, x, use_reentrant=False)
            else:
                x = layer(x)
            if output_hidden_states:
                states += (x,)
        return x, states


class InternVisionModel(nn.Module):
    """InternViT (InternViT-300M-448px-V2_5 with the default arguments).

    Args:
        hidden_size: token width D (1024).
        num_hidden_layers: number of blocks (24).
        num_attention_heads: heads (16).
        intermediate_size: MLP width (4096).
        image_size: size the position table is learned for (448).
        patch_size: patch size and conv stride (14).
        num_channels: input channels (3).
        qkv_bias: bias on the qkv projection (True).
        qk_normalization: RMS-normalise q and k (False for 300M, True for 6B).
        norm_type: 'layer_norm' (300M) or 'rms_norm' (6B).
        layer_norm_eps: norm epsilon (1e-6).
        drop_path_rate: stochastic depth of the last layer (linear ramp from 0).
        attention_dropout: dropout on attention weights (0).
        dropout: dropout after the attention projection (0).
        initializer_factor: initial value of the layer scales ls1/ls2 (0.1).
        attn_implementation: 'sdpa' (torch fused kernels) or 'eager' (explicit softmax);
            both compute the same function, no flash-attn package is needed.
    """

    def __init__(
        self,
        hidden_size: int = 1024,
        num_hidden_layers: int = 24,
        num_attention_heads: int = 16,
        intermediate_size: int = 4096,
        image_size: int = 448,
        patch_size: int = 14,
        num_channels: int = 3,
        qkv_bias: bool = True,
        qk_normalization: bool = False,
        norm_type: NormType = "layer_norm",
        layer_norm_eps: float = 1e-6,
        drop_path_rate: float = 0.0,
        attention_dropout: float = 0.0,
        dropout: float = 0.0,
        initializer_factor: float = 0.1,
        attn_implementation: AttnImpl = "sdpa",
    ):
        super().__init__()
        self.hidden_size = hidden_size
        self.image_size = image_size
        self.patch_size = patch_size
        self.embeddings = InternVisionEmbeddings(hidden_size, image_size, patch_size, num_channels)
        self.encoder = InternVisionEncoder(
            num_layers=num_hidden_layers,
            drop_path_rate=drop_path_rate,
            hidden_size=hidden_size,
            num_heads=num_attention_heads,
            intermediate_size=intermediate_size,
            norm_type=norm_type,
            norm_eps=layer_norm_eps,
            layer_scale_init=initializer_factor,
            qkv_bias=qkv_bias,
            qk_normalization=qk_normalization,
            attention_dropout=attention_dropout,
            dropout=dropout,
            attn_implementation=attn_implementation,
        )

    @property
    def dtype(self) -> torch.dtype:
        return self.embeddings.patch_embedding.weight.dtype

    @property
    def num_patches(self) -> int:
        """Patches per `image_size` tile (1024 for 448 px, patch 14)."""
        return (self.image_size // self.patch_size) ** 2

    def set_attn_implementation(self, attn_implementation: AttnImpl) -> None:
        """Switch every layer between 'sdpa' and 'eager' attention (same weights)."""
        if attn_implementation not in ("sdpa", "eager"):
            raise ValueError(f"unknown attn_implementation {attn_implementation!r}")
        for layer in self.encoder.layers:
            layer.attn.attn_implementation = attn_implementation

    def forward(
        self, pixel_values: Tensor, output_hidden_states: bool = False
    ) -> BaseModelOutputWithPooling:
        """Encode image tiles.

        Args:
            pixel_values: (B, 3, H, W) normalised images (ImageNet mean/std), H, W
                multiples of `patch_size`; cast to the weights' dtype.
            output_hidden_states: also return the embeddings and every layer's output.

        Returns:
            BaseModelOutputWithPooling with `last_hidden_state` (B, 1 + HW/p^2, D),
            `pooler_output` (B, D) = the CLS token, `hidden_states` (tuple of
            num_hidden_layers + 1 tensors, or None).
        """
        if pixel_values.ndim != 4:
            raise ValueError(f"pixel_values must be (B, C, H, W), got {tuple(pixel_values.shape)}")
        hidden = self.embeddings(pixel_values)
        last, states = self.encoder(hidden, output_hidden_states=output_hidden_states)
        return BaseModelOutputWithPooling(
            last_hidden_state=last,
            pooler_output=last[:, 0],
            hidden_states=states if output_hidden_states else None,
        )


__all__ = [
    "DropPath",
    "InternAttention",
    "InternMLP",
    "InternRMSNorm",
    "InternVisionEmbeddings",
    "InternVisionEncoder",
    "InternVisionEncoderLayer",
    "InternVisionModel",
]
