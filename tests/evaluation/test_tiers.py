"""mpr_cma.evaluation.tiers: per-tier scores of saved masks and the two yardsticks on the
synthetic data (tiers.json labels every expression)."""

import shutil

import numpy as np
import pytest
from PIL import Image

from mpr_cma.datasets import RefVOSSplit, load_refcoco, ref_mask
from mpr_cma.datasets import sentence_items as refcoco_sentence_items
from mpr_cma.datasets.refcoco_format import instances_path, read_instances, segmentation_to_mask
from mpr_cma.datasets.synthetic import TIERS, SyntheticConfig, generate_synthetic
from mpr_cma.evaluation.tiers import (
    SHARES,
    read_tiers,
    refcoco_mask_shares,
    refcoco_tier_scores,
    refvos_tier_scores,
)
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



def write_masks(data, folder, mask_of):
    """`<item_id>.png` for every val sentence, the mask `mask_of(record)`."""
    folder.mkdir()
    for item_id, record, _ in refcoco_sentence_items(load_refcoco(data, "refcoco",
                                                                  split="val")):
        Image.fromarray(mask_of(record).astype(np.uint8) * 255).save(folder / f"{item_id}.png")


def test_mask_shares_of_the_ground_truth_and_of_the_whole_image(data, tmp_path):
    write_masks(data, tmp_path / "gt", ref_mask)
    shares = refcoco_mask_shares(data, tmp_path / "gt")
    for tier, row in shares.items():
        assert row["target"] == pytest.approx(1.0), tier
        assert row["predicted_pixels"] == row["target_pixels"]
    # Every pixel predicted: the shares are the image's make-up, summing to one.
    write_masks(data, tmp_path / "all", lambda r: np.ones((r.height, r.width), bool))
    whole = refcoco_mask_shares(data, tmp_path / "all")["all"]
    assert sum(whole[name] for name in SHARES) == pytest.approx(1.0)
    assert whole["target"] == pytest.approx(whole["target_pixels"] / whole["predicted_pixels"])
    assert 0 < whole["background"] < 1 and whole["same_colour"] > 0 and whole["same_shape"] > 0
    assert whole["num_items"] == sum(r["num_items"] for t, r in
                                     refcoco_mask_shares(data, tmp_path / "all").items()
                                     if t != "all")


def test_mask_shares_count_a_same_shape_distractor_as_such(data, tmp_path):
    """A prediction of every object of the target's shape but the target itself lands
    entirely on "same_shape" (the tiers' right-shape yardstick minus the target)."""
    anns = read_instances(instances_path(data, "refcoco"))["annotations"]

    def others_of_shape(record):
        mask = np.zeros((record.height, record.width), bool)
        for a in anns:
            if (a["image_id"] == record.image_id and a["category_id"] == record.category_id
                    and a["id"] != record.ann_id):
                mask |= segmentation_to_mask(a["segmentation"], record.height, record.width)
        return mask

    write_masks(data, tmp_path / "shape", others_of_shape)
    row = refcoco_mask_shares(data, tmp_path / "shape")["all"]
    assert row["predicted_pixels"] > 0
    assert row["same_shape"] == pytest.approx(1.0) and row["target"] == 0


def test_mask_shares_need_the_scenes_file(data, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    (copy / "scenes.json").unlink()
    with pytest.raises(FileNotFoundError, match="scenes.json"):
        refcoco_mask_shares(copy, tmp_path)
