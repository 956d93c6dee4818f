"""Text-Mask Contrastive loss: hand-computed values, pooling, negatives, multi-rank."""

import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mpr_cma.losses import (
    TextMaskContrastiveHead,
    masked_average_pool,
    sentence_ids_from_texts,
    symmetric_info_nce,
)

# Three unit-vector pairs. Similarity matrix S[i][j] = <z_v_i, z_t_j>:
#   z_v = (1, 0), (0, 1), (0.6, 0.8);  z_t = (1, 0), (0, 1), (0.96, 0.28)
#   S = [[1, 0, 0.96], [0, 1, 0.28], [0.6, 0.8, 0.8]]
Z_V = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
Z_T = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.96, 0.28]])
S = [[1.0, 0.0, 0.96], [0.0, 1.0, 0.28], [0.6, 0.8, 0.8]]
TAU = 0.15


def hand_info_nce(keep=lambda i, j: True):
    """L_v->t (rows) + L_t->v (columns), each the mean of -log softmax at the diagonal."""
    v2t = sum(-S[i][i] / TAU + math.log(sum(math.exp(S[i][j] / TAU)
                                            for j in range(3) if keep(i, j)))
              for i in range(3)) / 3
    t2v = sum(-S[j][j] / TAU + math.log(sum(math.exp(S[i][j] / TAU)
                                            for i in range(3) if keep(i, j)))
              for j in range(3)) / 3
    return v2t + t2v


def test_three_pairs_match_hand_computation():
    expected = hand_info_nce()
    assert expected == pytest.approx(1.0231790358, rel=1e-9)
    loss = symmetric_info_nce(Z_V, Z_T, tau=TAU)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # normalisation happens inside: scaling the inputs changes nothing
    assert symmetric_info_nce(3 * Z_V, 0.5 * Z_T, tau=TAU).item() == pytest.approx(
        expected, rel=1e-5)


def test_identical_sentences_are_not_negatives():
    ids = sentence_ids_from_texts(["the red car", "a dog", "The  red car"])
    assert ids[0] == ids[2] and ids[0] != ids[1]
    expected = hand_info_nce(keep=lambda i, j: {i, j} != {0, 2})
    assert expected == pytest.approx(0.3236203278, rel=1e-9)
    loss = symmetric_info_nce(Z_V, Z_T, tau=TAU, sentence_ids=ids)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_aligned_pairs_score_lower_than_shuffled():
    g = torch.Generator().manual_seed(0)
    z_t = torch.randn(8, 16, generator=g)
    z_v = z_t + 0.3 * torch.randn(8, 16, generator=g)
    aligned = symmetric_info_nce(z_v, z_t)
    shuffled = symmetric_info_nce(z_v, z_t[torch.roll(torch.arange(8), 3)])
    assert aligned < shuffled


def test_masked_average_pool_exact_and_empty_mask():
    features = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)
    weights = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]])
    pooled = masked_average_pool(features, weights)
    # sample 0, channel c: mean of features[0, c, 0, 0] and features[0, c, 1, 1]
    assert pooled[0].tolist() == pytest.approx([1.5, 5.5, 9.5], rel=1e-5)
    assert pooled[1].abs().max() == 0  # empty mask pools to the zero vector
    with pytest.raises(ValueError, match=r"weights must be .* got \(3, 2, 2\)"):
        masked_average_pool(features, torch.ones(3, 2, 2))


def test_head_gives_finite_loss_and_gradients_with_empty_and_full_masks():
    torch.manual_seed(0)
    head = TextMaskContrastiveHead(visual_dim=8, text_dim=6, embed_dim=4)
    features = torch.randn(3, 8, 5, 5, requires_grad=True)
    masks = torch.zeros(3, 10, 10)
    masks[1] = 1.0
    masks[2, 2:6, 3:7] = 1.0  # mask 0 is empty
    loss = head(features, masks, torch.randn(3, 6))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(features.grad).all()
    assert head.visual_proj[0].weight.grad.abs().sum() > 0
    bf16 = head.bfloat16()(features.bfloat16(), masks, torch.randn(3, 6).bfloat16())
    assert bf16.dtype == torch.float32 and torch.isfinite(bf16)


def test_single_object_and_shape_errors():
    assert symmetric_info_nce(Z_V[:1], Z_T[:1]).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match=r"\(3, 2\) and \(2, 2\)"):
        symmetric_info_nce(Z_V, Z_T[:2])
    with pytest.raises(ValueError, match="sentence_ids"):
        symmetric_info_nce(Z_V, Z_T, sentence_ids=torch.zeros(2, dtype=torch.long))


def _gathered_worker(rank, world, init_file, z_v, z_t, ids, results):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    rows = [slice(0, 2), slice(2, 5)][rank]  # unequal batch sizes on purpose
    local_v = z_v[rows].clone().requires_grad_(True)
    loss = symmetric_info_nce(local_v, z_t[rows], tau=TAU, sentence_ids=ids[rows],
                              gather_across_ranks=True)
    loss.backward()
    results[rank] = (loss.item(), local_v.grad.abs().sum().item())
    dist.destroy_process_group()


def test_gather_across_ranks_equals_one_big_batch(tmp_path):
    g = torch.Generator().manual_seed(0)
    z_v, z_t = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    ids = torch.tensor([1, 2, 3, 1, 4])  # objects 0 and 3 share a sentence across ranks
    results = mp.Manager().dict()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(_gathered_worker, args=(2, str(tmp_path / "pg"), z_v, z_t, ids, results),
             nprocs=2, join=True)
    # Each rank averages over its own rows against all columns, so the row-weighted
    # mean of the two rank losses is the loss of the concatenated batch.
    combined = (2 * results[0][0] + 3 * results[1][0]) / 5
    expected = symmetric_info_nce(z_v, z_t, tau=TAU, sentence_ids=ids).item()
    assert combined == pytest.approx(expected, rel=1e-5)
    assert results[0][1] > 0 and results[1][1] > 0


def test_placeholder_rows_are_neither_anchors_nor_negatives():
    ids = torch.tensor([1, 2, 3])
    expected = symmetric_info_nce(Z_V[:2], Z_T[:2], tau=TAU, sentence_ids=ids[:2])
    with_placeholder = symmetric_info_nce(Z_V, Z_T, tau=TAU,
                                          sentence_ids=torch.tensor([1, 2, -1]))
    assert with_placeholder.item() == pytest.approx(expected.item(), rel=1e-6)
    z_v = Z_V.clone().requires_grad_(True)
    only = symmetric_info_nce(z_v, Z_T, tau=TAU, sentence_ids=torch.full((3,), -1))
    only.backward()
    assert only.item() == 0.0 and z_v.grad is not None and torch.isfinite(z_v.grad).all()


def _placeholder_rank_worker(rank, world, init_file, results):
    import datetime

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world, timeout=datetime.timedelta(seconds=30))
    g = torch.Generator().manual_seed(rank)
    z_v = torch.randn(2, 4, generator=g, requires_grad=True)
    z_t = torch.randn(2, 4, generator=g)
    # Rank 1 holds only a placeholder (a batch without objects): the gather's backward is
    # a collective, so rank 1 must still run it or rank 0 waits forever.
    ids = torch.tensor([1, 2]) if rank == 0 else torch.tensor([-1, -1])
    loss = symmetric_info_nce(z_v, z_t, tau=TAU, sentence_ids=ids, gather_across_ranks=True)
    loss.backward()
    results[rank] = loss.item()
    dist.destroy_process_group()


def test_a_rank_with_only_placeholders_does_not_hang_the_others(tmp_path):
    results = mp.Manager().dict()
    mp.spawn(_placeholder_rank_worker, args=(2, str(tmp_path / "pg"), results), nprocs=2,
             join=True)
    assert results[1] == 0.0 and math.isfinite(results[0]) and results[0] > 0
