"""scripts/probe_seg_prompt.py (issue 13): the demo model's [SEG] prompts of one
conversation are near-identical at init, the oracle's are not, and the probe's scores are
cumulative IoUs against the right masks."""

import pytest
import torch

from mpr_cma.datasets.synthetic import SyntheticConfig, generate_synthetic
from tests.scripts._drivers import load_script


@pytest.fixture(scope="module")
def probe():
    return load_script("probe_seg_prompt")


@pytest.fixture(scope="module")
def attribute_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("attribute")
    config = SyntheticConfig(images={"train": 16, "val": 8, "testA": 2, "testB": 2},
                             videos={"train": 2, "valid_u": 2}, frames=4,
                             image_kinds=("attribute",))
    generate_synthetic(root, seed=0, config=config)
    return root


def test_conversation_cosine(probe):
    same = torch.ones(3, 2)
    opposite = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert probe.conversation_cosine(torch.cat([same, opposite]), [3, 2]) == pytest.approx(
        [1.0, -1.0])
    assert probe.conversation_cosine(same[:1], [1]) == []   # one object: no pair


@pytest.mark.parametrize(("prompt", "low", "high"), [("seg", 0.8, 1.0), ("oracle", -0.3, 0.3)])
def test_untrained_prompts_of_one_conversation(probe, attribute_data, prompt, low, high):
    # zero steps is not allowed; one step at lr 0 leaves the init unchanged
    result = probe.run_probe(attribute_data, steps=1, prompt=prompt, lr=0.0, eval_every=1,
                             progress=False)
    assert low <= result["prompt_cosine"] <= high, result
    assert 0.0 <= result["ciou"] <= 1.0 and 0.0 < result["every_object"] <= 1.0
    assert result["history"][0]["step"] == 1


def test_bad_prompt_is_refused(probe, attribute_data):
    with pytest.raises(ValueError, match="--prompt"):
        probe.run_probe(attribute_data, steps=1, prompt="nope", progress=False)
