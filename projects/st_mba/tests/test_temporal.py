"""Track windows, the temporal prior and the object tokens, against hand-computed values."""

import pytest
import torch

from projects.st_mba.st_mba import object_tokens, temporal_prior, track_windows


def test_windows_stay_inside_their_track_in_row_order():
    # Rows: track 7 = rows 0, 1, 4 (frames in that order), track 3 = rows 2, 3, track 9 = 5.
    tracks = torch.tensor([7, 7, 3, 3, 7, 9])
    win = track_windows(tracks, 6, 3)
    # Slots: offset -1, offset +1.
    assert win.valid.tolist() == [[False, True], [True, True], [False, True],
                                  [True, False], [True, False], [False, False]]
    index = torch.where(win.valid, win.index, torch.full_like(win.index, -1))
    assert index.tolist() == [[-1, 1], [0, 4], [-1, 3], [2, -1], [1, -1], [-1, -1]]
    # Invalid slots point at the row itself (gathers stay in range).
    assert win.index[5].tolist() == [5, 5]


def test_window_five_and_window_one():
    tracks = torch.zeros(4, dtype=torch.long)
    win = track_windows(tracks, 4, 5)  # offsets -2, -1, 1, 2
    assert win.valid[0].tolist() == [False, False, True, True]
    assert win.index[1][win.valid[1]].tolist() == [0, 2, 3]
    one = track_windows(tracks, 4, 1)
    assert one.index.shape == (4, 0) and one.valid.shape == (4, 0)


def test_no_tracks_means_no_neighbours():
    win = track_windows(None, 3, 3)
    assert not win.valid.any()


@pytest.mark.parametrize("bad, error", [
    (dict(window=2), ValueError), (dict(window=0), ValueError),
    (dict(track_index=torch.zeros(2, dtype=torch.long)), ValueError),
    (dict(track_index=torch.zeros(3)), TypeError),
])
def test_bad_windows(bad, error):
    args = dict(track_index=torch.zeros(3, dtype=torch.long), num_rows=3, window=3) | bad
    with pytest.raises(error):
        track_windows(**args)


def test_prior_mean_and_max_by_hand():
    logits = torch.tensor([1.0, 3.0, -2.0, 5.0]).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    win = track_windows(torch.tensor([0, 0, 0, 1]), 4, 3)
    mean = temporal_prior(logits, win, mix=0.5, pool="mean")[:, 0, 0, 0]
    # Row 0: 0.5*1 + 0.5*3; row 1: 0.5*3 + 0.5*mean(1, -2); row 2: 0.5*(-2) + 0.5*3; row 3 alone.
    assert mean.tolist() == [2.0, 1.25, 0.5, 5.0]
    mx = temporal_prior(logits, win, mix=0.25, pool="max")[:, 0, 0, 0]
    assert mx.tolist() == [0.75 * 1 + 0.25 * 3, 0.75 * 3 + 0.25 * 1, 0.75 * -2 + 0.25 * 3, 5.0]
    assert temporal_prior(logits, win, mix=0.0).equal(logits.float())


def test_prior_bad_knobs():
    win = track_windows(None, 1, 3)
    with pytest.raises(ValueError, match="pool"):
        temporal_prior(torch.zeros(1, 1, 2, 2), win, 0.5, pool="median")
    with pytest.raises(ValueError, match="mix"):
        temporal_prior(torch.zeros(1, 1, 2, 2), win, 1.5)


def test_object_tokens_are_gate_weighted_means_of_the_neighbours():
    visual = torch.zeros(2, 2, 1, 2)
    visual[0, :, 0, 0] = torch.tensor([2.0, 4.0])
    visual[0, :, 0, 1] = torch.tensor([6.0, 8.0])
    gate = torch.tensor([[[[1.0, 3.0]]], [[[0.0, 0.0]]]])  # (B, 1, H, W)
    win = track_windows(torch.tensor([0, 0]), 2, 3)
    tokens, valid = object_tokens(visual, gate, win, eps=0.0)
    # Row 1's left neighbour is row 0: (1*[2,4] + 3*[6,8]) / 4 = [5, 7].
    assert valid.tolist() == [[False, True], [True, False]]
    assert tokens[1, 0].tolist() == [5.0, 7.0]
    assert tokens[1, 1].tolist() == [0.0, 0.0] and tokens[0, 0].tolist() == [0.0, 0.0]
