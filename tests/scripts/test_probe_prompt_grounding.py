"""scripts/probe_prompt_grounding.py (issue 13): the tiny SAM-2 grounding, given a learned
prompt per kind of object, segments the prompted objects well above the every-object level,
and a single prompt shared by every kind (the control) cannot."""

import pytest

from tests.scripts._drivers import load_script

# The demo's grounding width (configs/tiny/demo.py) and the probe's lr for it.
DIM, LR, STEPS, N_EVAL = 128, 3e-4, 300, 64


@pytest.fixture(scope="module")
def probe():
    return load_script("probe_prompt_grounding")


@pytest.mark.slow
def test_distinct_prompts_refer(probe):
    result = probe.run_probe(steps=STEPS, dim=DIM, lr=LR, eval_every=STEPS, n_eval=N_EVAL,
                             progress=False)
    every = result["yardsticks"]["every"]
    assert result["iou"] >= every + 0.05, result


@pytest.mark.slow
def test_shared_prompt_cannot_refer(probe):
    result = probe.run_probe(steps=STEPS, dim=DIM, lr=LR, variant="shared_prompt",
                             eval_every=STEPS, n_eval=N_EVAL, progress=False)
    assert result["iou"] <= result["yardsticks"]["every"] + 0.02, result


def test_unknown_variant_is_refused(probe):
    with pytest.raises(ValueError, match="--variant"):
        probe.build("nope", 64)


def test_batch_masks_nest(probe):
    import numpy as np
    batch = probe.make_batch(np.random.default_rng(0), 4, 64)
    target = batch["target"]
    for name in ("every", "colour", "shape"):
        assert (batch[name] | ~target).all(), name  # each yardstick covers the target
    assert batch["pixels"].shape == (4, 3, 64, 64)


def test_single_colour_scenes_leave_only_shape(probe):
    import numpy as np
    batch = probe.make_batch(np.random.default_rng(0), 6, 64, mono_fraction=1.0)
    # One colour per scene: the colour union is every object, the target is the shape union.
    assert (batch["colour"] == batch["every"]).all()
    assert (batch["target"] == batch["shape"]).all()
    mixed = probe.make_batch(np.random.default_rng(0), 16, 64)
    assert not (mixed["colour"] == mixed["every"]).all()


def test_shape_pretraining_trains_the_encoder_only(probe):
    import torch
    model = probe.build("demo", 64, 32)
    encoder = [p.detach().clone() for p in model.sam2_model.image_encoder.parameters()]
    decoder = [p.detach().clone() for p in model.sam2_model.sam_mask_decoder.transformer
               .parameters()]
    accuracy = probe.pretrain_shape(model, steps=2, size=64, lr=1e-3, seed=0, batch=2,
                                    n_eval=2)
    assert 0.0 <= accuracy <= 1.0
    assert any(not torch.equal(a, b) for a, b in
               zip(encoder, model.sam2_model.image_encoder.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b in
               zip(decoder, model.sam2_model.sam_mask_decoder.transformer.parameters(),
                   strict=True))


def test_mono_fraction_is_checked(probe):
    with pytest.raises(ValueError, match="--mono-fraction"):
        probe.run_probe(steps=1, mono_fraction=1.5, progress=False)
