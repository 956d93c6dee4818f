"""The video frame rule, seen through SAM-2's own calls (a spy on the tiny model).

Sa2VA's predict_forward: the first min(5, T) frames get the [SEG] prompt, each an initial
conditioning frame without memory; the other frames are tracked by SAM-2's memory and get
no language prompt; memory features are stored in bf16.
"""

import pytest
import torch

from tests.models.grounding.test_sam2_grounding import make_inputs, make_model


class SAM2Spy:
    """Records, per SAM-2 call, what the video loop asked of it."""

    def __init__(self, sam, monkeypatch):
        self.calls = []
        prepare, heads = sam._prepare_memory_conditioned_features, sam._forward_sam_heads

        def spy_prepare(**kw):
            bank = kw["output_dict"]
            stored = [m["maskmem_features"] for b in bank.values() for m in b.values()]
            # An initial conditioning frame reads no memory (SAM-2 ignores the bank).
            read = None if kw["is_init_cond_frame"] else sorted(bank["cond_frame_outputs"])
            self.calls.append(("memory", kw["frame_idx"], kw["is_init_cond_frame"], read,
                               stored))
            return prepare(**kw)

        def spy_heads(*args, language_embd=None, **kw):
            self.calls.append(("decode", language_embd is not None))
            return heads(*args, language_embd=language_embd, **kw)

        monkeypatch.setattr(sam, "_prepare_memory_conditioned_features", spy_prepare)
        monkeypatch.setattr(sam, "_forward_sam_heads", spy_heads)

    def frames(self):
        """Per visited frame: (t, initial conditioning?, conditioning frames whose memory it
        reads (None: no memory), decoder calls with a language prompt, calls without)."""
        out = []
        for call in self.calls:
            if call[0] == "memory":
                out.append([call[1], call[2], call[3], 0, 0])
            else:
                out[-1][3 if call[1] else 4] += 1
        return [tuple(f) for f in out]


def run(monkeypatch, num_frames, mba=True, **kwargs):
    model = make_model(mba=mba, gamma=0.5, **kwargs).eval()
    images, prompt, text, text_mask = make_inputs(frames=num_frames, objects=1)
    with torch.no_grad():
        feats = model.encode(model.preprocess(images, video=True))
        spy = SAM2Spy(model.sam2_model, monkeypatch)
        keys, prompt_tracked = model.video_plan(list(range(min(5, num_frames))))
        out = model.segment_video(feats, prompt, keys, text, text_mask,
                                  prompt_tracked=prompt_tracked)
    return model, out, spy


def test_sa2va_rule_prompts_the_first_five_frames_and_tracks_the_rest(monkeypatch):
    _, out, spy = run(monkeypatch, 7)
    expected = [(t, True, None, 2, 0) for t in range(5)]  # pass 1, MBA, pass 2
    expected += [(5, False, [0, 1, 2, 3, 4], 0, 1), (6, False, [0, 1, 2, 3, 4], 0, 1)]
    assert spy.frames() == expected
    assert out["prompted"] == [0, 1, 2, 3, 4] and out["mba_frames"] == [0, 1, 2, 3, 4]
    assert out["pred_masks"].shape == (1, 7, 16, 16)


def test_short_video_is_prompted_on_every_frame(monkeypatch):
    _, out, spy = run(monkeypatch, 3)
    assert spy.frames() == [(t, True, None, 2, 0) for t in range(3)]
    assert out["prompted"] == [0, 1, 2]


def test_memory_features_are_stored_in_bf16(monkeypatch):
    _, _, spy = run(monkeypatch, 7)
    stored = spy.calls[-2][4]  # what frame 6 reads: 5 key frames + frame 5
    assert len(stored) == 6
    assert all(torch.equal(m, m.bfloat16().to(m.dtype)) for m in stored)
    assert any(not torch.equal(m, m.bfloat16().float()) for m in _full_precision(monkeypatch))


def _full_precision(monkeypatch):
    """The same memories with memory_dtype=None are not all bf16 values (the check above
    is not vacuous)."""
    _, _, spy = run(monkeypatch, 7, memory_dtype=None)
    return spy.calls[-2][4]


def test_mba_on_tracked_frames_knob(monkeypatch):
    _, out, spy = run(monkeypatch, 7, mba_on_tracked_frames=True)
    assert [f[3:] for f in spy.frames()] == [(2, 0)] * 5 + [(0, 2)] * 2  # unprompted 2 passes
    assert out["mba_frames"] == list(range(7)) and out["prompted"] == [0, 1, 2, 3, 4]


def test_all_frames_rule_is_our_former_one(monkeypatch):
    """video_prompt="all_frames": frame 0 conditions, every frame is prompted (and MBA)."""
    _, out, spy = run(monkeypatch, 7, video_prompt="all_frames")
    assert spy.frames() == [(0, True, None, 2, 0)] + [(t, False, [0], 2, 0) for t in range(1, 7)]
    assert out["prompted"] == list(range(7)) == out["mba_frames"]


def test_tracked_frames_without_mba_are_plain_sam2(monkeypatch):
    """Sa2VA's tracked frame in the baseline: SAM-2's decoder once, no language token."""
    _, out_base, spy = run(monkeypatch, 6, mba=False)
    assert [f[3:] for f in spy.frames()] == [(1, 0)] * 5 + [(0, 1)]
    assert out_base["mba_frames"] == []


def test_bad_video_prompt():
    with pytest.raises(ValueError, match="video_prompt"):
        make_model(mba=False, video_prompt="every")
    with pytest.raises(ValueError, match="memory_dtype"):
        make_model(mba=False, memory_dtype="bfloat17")
