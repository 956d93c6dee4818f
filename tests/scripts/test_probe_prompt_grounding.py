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
