"""Sa2VA's folders as they are: RefCOCO under ref_seg/ + glamm_data/, videos under video_datas/.

Paths expected from Sa2VA's sources (projects/sa2va/evaluation/sa2va_eval_refcoco.py,
projects/sa2va/configs/sa2va_in30_8b.py, projects/sa2va/evaluation/sa2va_eval_ref_vos.py).
"""

import shutil
from pathlib import Path

import numpy as np
import pytest

from mpr_cma.datasets import (
    RefCOCODataset,
    load_refcoco,
    locate_refcoco,
    locate_video_split,
    ref_mask,
)
from tests.datasets._train_data import TINY
from tests.datasets.test_refcoco_format import build_refcoco_root

GLAMM = Path("glamm_data") / "images" / "coco2014" / "train2014"


def to_sa2va_refcoco(root: Path, datasets=("refcoco",), training_images: bool = False) -> None:
    """Move a root in our layout into Sa2VA's: ref_seg/<dataset>/ and the images under
    glamm_data/images/coco2014/train2014 (its evaluation) or, with `training_images`,
    ref_seg/<dataset>/coco2014/train2014 (its training configs' data_prefix)."""
    for dataset in datasets:
        (root / "ref_seg").mkdir(exist_ok=True)
        (root / dataset).rename(root / "ref_seg" / dataset)
    images = root / "coco2014" / "train2014"
    if training_images:
        for dataset in datasets:
            shutil.copytree(images, root / "ref_seg" / dataset / "coco2014" / "train2014")
        shutil.rmtree(root / "coco2014")
    else:
        (root / GLAMM).parent.mkdir(parents=True)
        images.rename(root / GLAMM)
        (root / "coco2014").rmdir()


def test_our_layout_is_found_first(tmp_path):
    build_refcoco_root(tmp_path)
    where = locate_refcoco(tmp_path, "refcoco")
    assert (where.layout, where.ann_root, where.image_root) == (
        "mpr_cma", tmp_path, tmp_path / "coco2014" / "train2014")


@pytest.mark.parametrize("training_images", [False, True])
def test_sa2va_refcoco_folders(tmp_path, training_images):
    info = build_refcoco_root(tmp_path)
    ours = load_refcoco(tmp_path, "refcoco", split="val")
    to_sa2va_refcoco(tmp_path, training_images=training_images)
    images = (tmp_path / "ref_seg" / "refcoco" / "coco2014" / "train2014" if training_images
              else tmp_path / GLAMM)
    where = locate_refcoco(tmp_path, "refcoco")
    assert (where.layout, where.ann_root, where.image_root) == (
        "sa2va", tmp_path / "ref_seg", images)
    theirs = load_refcoco(tmp_path, "refcoco", split="val")
    assert [r.ref_id for r in theirs] == [r.ref_id for r in ours] == [1, 2]
    for rec in theirs:
        assert rec.image_path.parent == images and rec.image_path.is_file()
        np.testing.assert_array_equal(ref_mask(rec), info["masks"][rec.ann_id])
    ds = RefCOCODataset(tmp_path, dataset="refcoco", split="train", seed=0, replace=False,
                        **TINY)
    assert ds.image_root == images and ds[0]["masks"].shape[0] == 1


def test_forced_layouts_and_explicit_image_root(tmp_path):
    build_refcoco_root(tmp_path)
    forced = locate_refcoco(tmp_path, "refcoco", "sa2va")
    assert forced.ann_root == tmp_path / "ref_seg" and forced.image_root == tmp_path / GLAMM
    with pytest.raises(FileNotFoundError, match=r"ref_seg/refcoco/refs\(unc\).p"):
        load_refcoco(tmp_path, "refcoco", layout="sa2va")
    own = locate_refcoco(tmp_path, "refcoco", image_root=tmp_path / "elsewhere")
    assert own.image_root == tmp_path / "elsewhere"
    with pytest.raises(ValueError, match="data layout must be one of"):
        locate_refcoco(tmp_path, "refcoco", "refer")


def test_video_split_folders(tmp_path):
    ours = tmp_path / "davis17" / "valid"
    theirs = tmp_path / "video_datas" / "davis17" / "valid"
    assert locate_video_split(tmp_path, "davis17", "valid") == ours  # nothing there: ours
    (theirs.parent / "meta_expressions" / "valid").mkdir(parents=True)
    (theirs.parent / "meta_expressions" / "valid" / "meta_expressions.json").write_text("{}")
    assert locate_video_split(tmp_path, "davis17", "valid") == theirs
    ours.mkdir(parents=True)
    (ours / "meta_expressions.json").write_text("{}")
    assert locate_video_split(tmp_path, "davis17", "valid") == ours
    assert locate_video_split(tmp_path, "davis17", "valid", "sa2va") == theirs
    assert locate_video_split(tmp_path, "ref_ytvos", "train", "sa2va") == (
        tmp_path / "video_datas" / "rvos" / "train")
