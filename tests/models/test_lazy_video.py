"""Lazy video encoding (`predict_video(encoding="lazy")`) gives the batched path's masks.

Each frame is encoded alone when SAM-2 visits it, and the memory bank is pruned to the
frames SAM-2 can still read; 24 frames exceed that horizon (16 object pointers), so the
pruning is exercised. Checked on per-frame MBA, the baseline (no MBA) and ST-MBA's
temporal prior (`uses_tracks`: the key frames decoded together).
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mpr_cma.engine.config import load_config
from mpr_cma.models.grounding import video as video_module
from mpr_cma.models.grounding.lazy_video import LazyVideoFeatures
from mpr_cma.models.grounding.video import _memory_horizon
from mpr_cma.models.inference import predict_video
from mpr_cma.registry import MODELS

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {
    "mba": ROOT / "configs" / "tiny" / "sa2va_mba_tiny.py",
    "baseline": ROOT / "configs" / "tiny" / "sa2va_baseline_tiny.py",
    "st_mba": ROOT / "projects" / "st_mba" / "configs" / "st_mba_tiny.py",
}
NUM_FRAMES = 24


def video(num_frames=NUM_FRAMES, h=40, w=52, seed=0) -> list[Image.Image]:
    """A square drifting across noise: masks that change from frame to frame."""
    rng = np.random.default_rng(seed)
    frames = []
    for t in range(num_frames):
        a = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
        a[8:24, 2 + t : 18 + t] = (230, 40, 40)
        frames.append(Image.fromarray(a))
    return frames


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def model(request):
    torch.manual_seed(0)
    m = MODELS.build(load_config(CONFIGS[request.param]).model).eval()
    # Random init gives near-zero logits; scale the prompt projection so that masks are
    # neither all empty nor all full and a difference would show.
    with torch.no_grad():
        m.text_hidden_fcs[2].weight.mul_(30.0)
    return m


def test_horizon_exceeded_by_the_test_video(model):
    assert _memory_horizon(model.grounding.sam2_model) + 5 < NUM_FRAMES


def test_lazy_masks_equal_batched(model):
    frames = video()
    kwargs = dict(answer="It is [SEG].", num_key_frames=3)
    lazy = predict_video(model, frames, "the red square", encoding="lazy", **kwargs)
    batched = predict_video(model, frames, "the red square", encoding="batched", **kwargs)
    assert lazy["prompted"] == batched["prompted"] == [0, 1, 2]
    assert lazy["mba_frames"] == batched["mba_frames"]
    assert lazy["masks"].shape == (NUM_FRAMES, 40, 52)
    assert 0 < batched["masks"].mean() < 1, "a degenerate mask cannot show a difference"
    assert np.array_equal(lazy["masks"], batched["masks"])


def test_segment_video_logits_close(model, monkeypatch):
    """Below the masks: the logits of the lazy path (pruned memory bank, batch-1 encoder)
    against the batched encoder with every memory kept."""
    g = model.grounding
    frames = torch.randint(0, 255, (NUM_FRAMES, 3, 40, 52), dtype=torch.uint8)
    torch.manual_seed(1)
    prompt = torch.randn(2, 1, g.hidden_dim)
    text = torch.randn(2, 3, g.hidden_dim)
    mask = torch.ones(2, 3, dtype=torch.bool)
    keys = [0, 3]
    horizon = video_module._memory_horizon
    with torch.no_grad():
        monkeypatch.setattr(video_module, "_memory_horizon", lambda sam: 10**9)
        eager = g.segment_video(g.encode(g.preprocess(frames, video=True)), prompt, keys,
                                text, mask)
        monkeypatch.setattr(video_module, "_memory_horizon", horizon)
        lazy_features = LazyVideoFeatures(g, lambda t: frames[t : t + 1], NUM_FRAMES,
                                          keep=keys)
        lazy = g.segment_video(lazy_features, prompt, keys, text, mask)
    # Every frame encoded exactly once: key frames first, then the others in order.
    assert lazy_features.encoded == keys + [t for t in range(NUM_FRAMES) if t not in keys]
    # Measured: 8e-8 (the encoder at batch 1 vs T); a memory horizon cut to 8 frames moves
    # them by 7e-4, so the pruning is held to SAM-2's exact reads.
    for name in ("pred_masks", "pred_masks_pass1", "object_score_logits"):
        torch.testing.assert_close(lazy[name], eager[name], rtol=0, atol=1e-6)


def test_unknown_encoding_is_refused(model):
    with pytest.raises(ValueError, match="encoding must be one of"):
        predict_video(model, video(2), "x", answer="It is [SEG].", encoding="eager")
