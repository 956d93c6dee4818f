"""mpr_cma.evaluation.tiers: per-tier scores of saved masks and the two yardsticks on the
synthetic data (tiers.json labels every expression)."""


import numpy as np
import pytest
from PIL import Image

from mpr_cma.datasets import RefVOSSplit, load_refcoco, ref_mask
from mpr_cma.datasets import sentence_items as refcoco_sentence_items
from mpr_cma.datasets.synthetic import TIERS, SyntheticConfig, generate_synthetic
from mpr_cma.evaluation.tiers import read_tiers, refcoco_tier_scores, refvos_tier_scores
from mpr_cma.evaluation.yardsticks import refcoco_every_object, refvos_every_object


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    generate_synthetic(root, seed=0, config=SyntheticConfig(
        images={"train": 4, "val": 12, "testA": 2, "testB": 2},
        videos={"train": 2, "valid_u": 4}, frames=4))
    return root


def test_every_expression_has_a_tier(data):
    labels = read_tiers(data)
    records = load_refcoco(data, "refcoco", split="val")
    for rec in records:
        assert len(labels["refcoco"][str(rec.ref_id)]) == len(rec.sentences)
        assert set(labels["refcoco"][str(rec.ref_id)]) <= set(TIERS)
    split = RefVOSSplit(data / "mevis" / "valid_u")
    for e in split.iter_expressions():
        assert labels["mevis"]["valid_u"][e.video][e.exp_id] == "motion"


def test_yardsticks_match_and_ground_truth_scores_one(data, tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    for item_id, record, _ in refcoco_sentence_items(load_refcoco(data, "refcoco",
                                                                  split="val")):
        Image.fromarray(ref_mask(record).astype(np.uint8) * 255).save(masks / f"{item_id}.png")
    scores = refcoco_tier_scores(data, masks)
    every = refcoco_every_object(data, "refcoco", "val")
    assert scores["every_object"]["all"]["cIoU"] == pytest.approx(every["cIoU"])
    for tier, row in scores["model"].items():
        assert row["cIoU"] == pytest.approx(1.0), tier
    # the right shape covers the target, so it scores at least the every-object union
    assert scores["right_shape"]["all"]["cIoU"] >= scores["every_object"]["all"]["cIoU"]
    assert sum(r["num_items"] for t, r in scores["model"].items() if t != "all") == \
        scores["model"]["all"]["num_items"]


def test_video_tier(data, tmp_path):
    split = RefVOSSplit(data / "mevis" / "valid_u")
    masks = tmp_path / "masks"
    for e in split.iter_expressions():
        gt = split.expression_masks(e.video, e.exp_id)
        for frame, mask in zip(split.frames(e.video), gt, strict=True):
            path = masks / e.video / e.exp_id / f"{frame}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask.astype(np.uint8) * 255).save(path)
    scores = refvos_tier_scores(data, masks)
    assert scores["model"]["motion"]["J&F"] == pytest.approx(1.0)
    every = refvos_every_object(data / "mevis" / "valid_u")
    assert scores["every_object"]["motion"]["J&F"] == pytest.approx(every["J&F"])


def test_missing_tiers_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="tiers.json"):
        read_tiers(tmp_path)

