"""Text-Mask Contrastive (TMC) loss, paper section 3.3, eq. (5).

z_v = masked average pool of the feature map over the object's mask, z_t = a sentence
embedding of the expression; both are projected to a shared space (ours) and
L2-normalised, and a symmetric InfoNCE pulls matching (z_v, z_t) pairs together:

    L_tmc = L_{v->t} + L_{t->v},  logits = <z_v, z_t> / tau_tmc  (tau_tmc = 0.15)

Negatives are the other objects of the batch, optionally gathered across ranks (ours).
Two objects described by the identical sentence are not negatives of each other: their
off-diagonal logits are removed from both softmaxes (ours), so the loss never asks the
model to tell two equal sentences apart.
"""

import hashlib

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributed.nn.functional import all_gather as all_gather_with_grad

from mpr_cma.registry import MODELS


def masked_average_pool(features: Tensor, weights: Tensor, eps: float = 1e-6) -> Tensor:
    """Average feature vectors inside a (soft) mask.

    Args:
        features: (B, C, H, W) feature map, any float dtype.
        weights: (B, H', W') or (B, 1, H', W') mask in [0, 1] (binary or probabilities);
            bilinearly resized to (H, W) when the sizes differ.
        eps: guards the division; an empty mask pools to the zero vector.

    Returns:
        (B, C) fp32 pooled features.
    """
    given = tuple(weights.shape)
    if weights.dim() == 3:
        weights = weights.unsqueeze(1)
    if weights.dim() != 4 or weights.shape[0] != features.shape[0] or weights.shape[1] != 1:
        raise ValueError(
            f"weights must be (B, H, W) or (B, 1, H, W) with B = {features.shape[0]} to "
            f"match features {tuple(features.shape)}, got {given}"
        )
    weights = weights.float()
    if weights.shape[-2:] != features.shape[-2:]:
        weights = F.interpolate(
            weights, size=features.shape[-2:], mode="bilinear", align_corners=False
        )
    pooled = (features.float() * weights).sum(dim=(2, 3))
    return pooled / (weights.sum(dim=(2, 3)) + eps)


def sentence_ids_from_texts(texts: list[str], device: torch.device | None = None) -> Tensor:
    """Stable int64 ids, equal for equal (whitespace/case-normalised) sentences.

    Stable across processes (unlike Python's `hash`), so ids gathered from several
    ranks can be compared.
    """
    ids = []
    for text in texts:
        key = " ".join(text.lower().split()).encode("utf-8")
        ids.append(int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") >> 1)
    return torch.tensor(ids, dtype=torch.long, device=device)


def _gather_with_grad(x: Tensor) -> tuple[Tensor, int]:
    """All-gather rows of `x` from every rank (sizes may differ), keeping gradients.

    Returns the concatenation over ranks and the offset of this rank's rows in it.
    """
    world, rank = dist.get_world_size(), dist.get_rank()
    size = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    sizes = [int(s.item()) for s in sizes]
    padded = x.new_zeros((max(sizes),) + tuple(x.shape[1:]))
    padded[: x.shape[0]] = x
    if x.requires_grad:
        gathered = all_gather_with_grad(padded)
    else:
        gathered = [torch.zeros_like(padded) for _ in range(world)]
        dist.all_gather(gathered, padded)
    rows = torch.cat([g[:n] for g, n in zip(gathered, sizes, strict=True)])
    return rows, sum(sizes[:rank])


def symmetric_info_nce(
    z_v: Tensor,
    z_t: Tensor,
    tau: float = 0.15,
    sentence_ids: Tensor | None = None,
    gather_across_ranks: bool = False,
) -> Tensor:
    """Symmetric InfoNCE, eq. (5): L_{v->t} + L_{t->v}, each a mean cross-entropy.

    Args:
        z_v: (B, D) visual embeddings (normalised here).
        z_t: (B, D) text embeddings of the same B objects, row i matches row i.
        tau: temperature tau_tmc.
        sentence_ids: (B,) int64; objects with equal ids are not negatives of each other; a
            negative id marks a placeholder row (e.g. the dummy object a rank without
            objects runs so that every rank joins the collectives): it is neither an
            anchor nor a negative.
        gather_across_ranks: use every rank's objects as negatives (needs an initialised
            torch.distributed process group; a no-op with one process).

    Returns:
        fp32 scalar. A batch with a single object gives 0 (no negatives); a batch of
        placeholders only gives an exact 0 connected to the graph.
    """
    if z_v.dim() != 2 or z_v.shape != z_t.shape:
        raise ValueError(
            f"z_v and z_t must both be (B, D), got {tuple(z_v.shape)} and {tuple(z_t.shape)}"
        )
    if sentence_ids is not None and tuple(sentence_ids.shape) != (z_v.shape[0],):
        raise ValueError(
            f"sentence_ids must be (B,) = ({z_v.shape[0]},), got {tuple(sentence_ids.shape)}"
        )
    z_v = F.normalize(z_v.float(), dim=-1)
    z_t = F.normalize(z_t.float(), dim=-1)
    all_v, all_t, all_ids, offset = z_v, z_t, sentence_ids, 0
    distributed = dist.is_available() and dist.is_initialized()
    if gather_across_ranks and distributed and dist.get_world_size() > 1:
        all_v, offset = _gather_with_grad(z_v)
        all_t, _ = _gather_with_grad(z_t)
        if sentence_ids is not None:
            all_ids, _ = _gather_with_grad(sentence_ids)
    labels = torch.arange(z_v.shape[0], device=z_v.device) + offset
    logits_v2t = z_v @ all_t.t() / tau  # (B, B_all)
    logits_t2v = z_t @ all_v.t() / tau
    if sentence_ids is None:
        return F.cross_entropy(logits_v2t, labels) + F.cross_entropy(logits_t2v, labels)
    # Same sentence, different object: neither positive nor negative. Placeholder rows
    # (negative ids) are neither anchors nor negatives anywhere.
    excluded = sentence_ids.unsqueeze(1) == all_ids.unsqueeze(0)
    excluded[torch.arange(len(labels)), labels] = False
    excluded |= (all_ids < 0).unsqueeze(0)
    rows = sentence_ids >= 0
    if not rows.any():
        # An exact 0 that still depends on the gathered tensors: the gather's backward is
        # a collective, so every rank must run it or the others wait forever.
        return (all_v.sum() + all_t.sum()) * 0.0
    logits_v2t = logits_v2t.masked_fill(excluded, float("-inf"))[rows]
    logits_t2v = logits_t2v.masked_fill(excluded, float("-inf"))[rows]
    return F.cross_entropy(logits_v2t, labels[rows]) + F.cross_entropy(logits_t2v, labels[rows])


@MODELS.register_module()
class TextMaskContrastiveHead(nn.Module):
    """Projection heads and the TMC loss (ours: linear-GELU-linear heads to `embed_dim`).

    Args:
        visual_dim: channels of the pooled feature map (256 for SAM-2).
        text_dim: width of the sentence embedding.
        embed_dim: shared embedding width.
        tau: temperature tau_tmc (paper: 0.15).
        gather_across_ranks: negatives from all ranks (ours: True).
    """

    def __init__(
        self,
        visual_dim: int = 256,
        text_dim: int = 256,
        embed_dim: int = 256,
        tau: float = 0.15,
        gather_across_ranks: bool = True,
    ):
        super().__init__()
        if tau <= 0:
            raise ValueError(f"tau must be > 0, got {tau}")
        self.tau = tau
        self.gather_across_ranks = gather_across_ranks
        self.visual_proj = nn.Sequential(
            nn.Linear(visual_dim, embed_dim), nn.GELU(), nn.Linear(embed_dim, embed_dim)
        )
        self.text_proj = nn.Sequential(
            nn.Linear(text_dim, embed_dim), nn.GELU(), nn.Linear(embed_dim, embed_dim)
        )

    def forward(
        self,
        features: Tensor,
        pool_weights: Tensor,
        text_embeds: Tensor,
        sentence_ids: Tensor | None = None,
    ) -> Tensor:
        """TMC loss of B objects.

        Args:
            features: (B, C, H, W) feature map of each object (the MBA output F_v').
            pool_weights: (B, H', W') mask to pool over (predicted probabilities or GT).
            text_embeds: (B, text_dim) sentence embeddings.
            sentence_ids: (B,) int64, see `sentence_ids_from_texts`.

        Returns:
            fp32 scalar.
        """
        pooled = masked_average_pool(features, pool_weights)
        param_dtype = self.visual_proj[0].weight.dtype
        z_v = self.visual_proj(pooled.to(param_dtype))
        z_t = self.text_proj(text_embeds.to(param_dtype))
        return symmetric_info_nce(z_v, z_t, self.tau, sentence_ids, self.gather_across_ranks)
