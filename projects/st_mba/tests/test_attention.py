"""SpatioTemporalMBA: per-frame MBA exactly where the paper's module applies, temporal
terms elsewhere, gradients to every new parameter, tracks that never mix, bad inputs."""

import pytest
import torch

from mpr_cma.models import MaskBiasedAttention
from mpr_cma.registry import MODELS
from projects.st_mba.st_mba import SpatioTemporalMBA

DIM, HEADS, K = 32, 4, 3
TRACKS = torch.tensor([0, 0, 0, 1, 2, 2])  # a 3-frame track, an image, a 2-frame track


def inputs(rows=6, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    visual = torch.randn(rows, DIM, 4, 4, generator=g).to(dtype)
    text = torch.randn(rows, 5, DIM, generator=g)
    text_mask = torch.ones(rows, 5, dtype=torch.bool)
    text_mask[1, 2:] = False
    logits = torch.randn(rows, 1, 16, 16, generator=g) * 3
    return visual, text, logits, text_mask


def pair(gamma=0.6, track_gamma=0.4, **kwargs):
    """A SpatioTemporalMBA and a MaskBiasedAttention with the same MBA weights."""
    torch.manual_seed(0)
    st = SpatioTemporalMBA(dim=DIM, num_heads=HEADS, top_k=K, **kwargs)
    mba = MaskBiasedAttention(dim=DIM, num_heads=HEADS, top_k=K)
    missing = mba.load_state_dict(st.state_dict(), strict=False)
    assert not missing.missing_keys
    assert all(k.startswith("track_attn.") for k in missing.unexpected_keys)
    with torch.no_grad():
        st.gamma.fill_(gamma)
        mba.gamma.fill_(gamma)
        if st.track_attn is not None:
            st.track_attn.gamma.fill_(track_gamma)
    return st, mba


def test_window_one_is_per_frame_mba_and_builds_nothing_new():
    st, mba = pair(window=1)
    assert st.track_attn is None
    assert set(dict(st.named_parameters())) == set(dict(mba.named_parameters()))
    visual, text, logits, mask = inputs()
    assert torch.equal(st(visual, text, logits, mask, track_index=TRACKS),
                       mba(visual, text, logits, mask))


@pytest.mark.parametrize("pool", ["mean", "max"])
def test_no_mix_and_no_track_gamma_is_per_frame_mba_exactly(pool):
    st, mba = pair(track_gamma=0.0, temporal_mix=0.0, temporal_pool=pool)
    visual, text, logits, mask = inputs()
    assert torch.equal(st(visual, text, logits, mask, track_index=TRACKS),
                       mba(visual, text, logits, mask))


def test_gamma_zero_returns_the_features():
    st, _ = pair(gamma=0.0, track_gamma=0.0)
    visual, text, logits, mask = inputs()
    assert torch.equal(st(visual, text, logits, mask, track_index=TRACKS), visual)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rows_without_neighbours_are_per_frame_mba(dtype):
    st, mba = pair()
    visual, text, logits, mask = inputs(dtype=dtype)
    out = st(visual, text, logits, mask, track_index=TRACKS)
    ref = mba(visual, text, logits, mask)
    assert out.dtype == dtype
    assert torch.equal(out[3], ref[3])  # the image row
    assert not torch.allclose(out[:3].float(), ref[:3].float())  # the 3-frame track
    # No tracks known: every row is per-frame MBA.
    assert torch.equal(st(visual, text, logits, mask), ref)


@pytest.mark.parametrize("kwargs", [{}, {"track_attention": False}, {"temporal_mix": 0.0}])
def test_tracks_never_mix(kwargs):
    st, _ = pair(**kwargs)
    visual, text, logits, mask = inputs()
    out = st(visual, text, logits, mask, track_index=TRACKS)
    # Change everything of track 2 (rows 4, 5): tracks 0 and 1 must not move.
    visual2, logits2 = visual.clone(), logits.clone()
    visual2[4:] += 5.0
    logits2[4:] = -logits2[4:]
    out2 = st(visual2, text, logits2, mask, track_index=TRACKS)
    assert torch.equal(out[:4], out2[:4])
    assert not torch.allclose(out[4:], out2[4:])


def test_each_variant_changes_what_it_names():
    visual, text, logits, mask = inputs()
    prior_only, mba = pair(track_attention=False)
    ref = mba(visual, text, logits, mask)
    out = prior_only(visual, text, logits, mask, track_index=TRACKS)
    assert not torch.allclose(out[:3], ref[:3])
    # The prior-only variant equals MBA run on the pooled logits.
    _, info = prior_only(visual, text, logits, mask, return_attention=True,
                         track_index=TRACKS)
    assert torch.equal(out, mba(visual, text, info["prior_logits"], mask))
    track_only, _ = pair(temporal_mix=0.0)
    _, info = track_only(visual, text, logits, mask, return_attention=True,
                         track_index=TRACKS)
    assert torch.equal(info["prior_logits"], logits)
    assert info["track_attn"].shape == (6, HEADS, 4, 4, 2)
    assert info["track_valid"].tolist() == [[False, True], [True, True], [True, False],
                                            [False, False], [False, True], [True, False]]


def test_gradients_reach_every_new_parameter_and_the_neighbours_logits():
    st, _ = pair(gamma=0.5, track_gamma=0.5)
    visual, text, logits, mask = inputs()
    visual.requires_grad_(True)
    logits.requires_grad_(True)
    out = st(visual, text, logits, mask, track_index=TRACKS)
    out[1].square().sum().backward()  # the middle frame of track 0
    for name, p in st.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # Its prior and its keys come from frames 0 and 2 of the track, and from nothing else.
    assert logits.grad[[0, 2]].abs().sum() > 0 and visual.grad[[0, 2]].abs().sum() > 0
    assert logits.grad[3:].abs().sum() == 0 and visual.grad[3:].abs().sum() == 0


def test_gammas_start_at_zero_and_warm_up_together():
    st = SpatioTemporalMBA(dim=DIM, num_heads=HEADS)
    assert st.gamma.item() == 0.0 and st.track_attn.gamma.item() == 0.0
    st.set_warmup_scale(0.25)
    assert st.warmup_scale == 0.25 and st.track_attn.warmup_scale == 0.25


def test_builds_from_the_registry_and_refuses_bad_knobs():
    built = MODELS.build(dict(type="SpatioTemporalMBA", dim=DIM, num_heads=HEADS, window=5,
                              temporal_pool="max"))
    assert built.uses_tracks and built.window == 5 and built.temporal_pool == "max"
    for bad in (dict(window=2), dict(temporal_mix=-0.1), dict(temporal_pool="median")):
        with pytest.raises(ValueError, match="SpatioTemporalMBA"):
            SpatioTemporalMBA(dim=DIM, num_heads=HEADS, **bad)
    st, _ = pair()
    visual, text, logits, mask = inputs()
    with pytest.raises(ValueError, match="track_index"):
        st(visual, text, logits, mask, track_index=TRACKS[:4])
    with pytest.raises(ValueError, match="visual"):
        st(visual[:, :8], text, logits, mask, track_index=TRACKS)
