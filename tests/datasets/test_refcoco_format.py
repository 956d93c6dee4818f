"""RefCOCO REFER-layout reader/writer: a tiny fixture in the real layout, hand-drawn masks."""

import json
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from mpr_cma.datasets.refcoco_format import (
    DEFAULT_SPLIT_BY,
    instances_path,
    load_refcoco,
    read_refs,
    ref_mask,
    refs_path,
    segmentation_to_mask,
    sentence_items,
    validate_segmentation,
    write_refcoco,
)
from mpr_cma.datasets.rle import encode_mask

IMAGE_DIR = Path("coco2014") / "train2014"
SPLITS = ("train", "val", "testA", "testB")


def image_name(image_id: int) -> str:
    return f"COCO_train2014_{image_id:012d}.jpg"


def expected_masks() -> dict[int, np.ndarray]:
    """Hand-drawn ground truth per ann_id (a polygon with corners (x0, y0) - (x1, y1) covers
    rows y0..y1-1 and columns x0..x1-1 in pycocotools' rasterisation)."""
    m101 = np.zeros((12, 16), bool)
    m101[3:7, 2:9] = True  # polygon [2,3, 9,3, 9,7, 2,7]
    m102 = np.zeros((12, 16), bool)
    m102[1:3, 10:14] = True  # two polygons, merged
    m102[8:11, 0:5] = True
    m201 = np.zeros((10, 8), bool)
    m201[2:9, 1:3] = True  # an L shape, stored as compressed RLE
    m201[7:9, 3:7] = True
    m202 = np.zeros((10, 8), bool)
    m202[0, 0] = m202[9, 7] = True  # two corner pixels, stored as uncompressed RLE
    return {101: m101, 102: m102, 201: m201, 202: m202}


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE: column-major runs starting with background."""
    flat = mask.T.reshape(-1).astype(np.uint8)
    runs, value, count = [], 0, 0
    for pixel in flat:
        if pixel != value:
            runs.append(count)
            value, count = pixel, 0
        count += 1
    runs.append(count)
    return {"size": list(mask.shape), "counts": [int(r) for r in runs]}


def build_refcoco_root(root: Path, dataset: str = "refcoco", split_by: str | None = None) -> dict:
    """Write a tiny data root: 2 images, polygon + RLE annotations, refs in 4 splits.

    Returns:
        {"masks": expected masks by ann_id, "refs": the refs given to the writer}.
    """
    masks = expected_masks()
    images = [
        {"id": 581857, "file_name": image_name(581857), "height": 12, "width": 16},
        {"id": 9, "file_name": image_name(9), "height": 10, "width": 8},
    ]
    image_dir = root / IMAGE_DIR
    image_dir.mkdir(parents=True, exist_ok=True)
    for img in images:
        pixels = np.full((img["height"], img["width"], 3), 128, np.uint8)
        assert cv2.imwrite(str(image_dir / img["file_name"]), pixels)
    annotations = [
        {"id": 101, "image_id": 581857, "category_id": 1,
         "segmentation": [[2, 3, 9, 3, 9, 7, 2, 7]]},
        {"id": 102, "image_id": 581857, "category_id": 18,
         "segmentation": [[10.0, 1.0, 14.0, 1.0, 14.0, 3.0, 10.0, 3.0],
                          [0, 8, 5, 8, 5, 11, 0, 11]]},
        {"id": 201, "image_id": 9, "category_id": 1, "segmentation": masks[201]},  # -> RLE str
        {"id": 202, "image_id": 9, "category_id": 1, "iscrowd": 1,
         "segmentation": uncompressed_rle(masks[202])},
    ]
    refs = [
        {"ref_id": 0, "ann_id": 101, "split": "train", "sentences": ["Man on the left"]},
        {"ref_id": 1, "ann_id": 102, "split": "val",
         "sentences": ["the dog", "brown dog top right", "Dog."]},
        {"ref_id": 2, "ann_id": 201, "split": "val", "sentences": ["L shape", "the letter"]},
        {"ref_id": 3, "ann_id": 202, "split": "testA", "sentences": ["corners"]},
        {"ref_id": 4, "ann_id": 101, "split": "testB", "sentences": ["box", "grey box"]},
    ]
    write_refcoco(root, dataset, images, annotations, refs, split_by)
    return {"masks": masks, "refs": refs}


@pytest.fixture
def data_root(tmp_path):
    info = build_refcoco_root(tmp_path)
    return tmp_path, info


def test_written_layout_is_refer(data_root):
    root, _ = data_root
    assert refs_path(root, "refcoco") == root / "refcoco" / "refs(unc).p"
    refs = read_refs(root / "refcoco" / "refs(unc).p")
    ref = refs[1]
    assert set(ref) >= {"ref_id", "ann_id", "image_id", "category_id", "split", "sent_ids",
                        "sentences", "file_name"}
    assert ref["file_name"] == "COCO_train2014_000000581857_102.jpg"  # the _<ann_id> suffix
    assert ref["image_id"] == 581857 and ref["category_id"] == 18
    assert ref["sentences"][0] == {"raw": "the dog", "sent": "the dog", "tokens": ["the", "dog"],
                                   "sent_id": 1}
    assert ref["sentences"][2] == {"raw": "Dog.", "sent": "dog", "tokens": ["dog"], "sent_id": 3}
    assert ref["sent_ids"] == [1, 2, 3]
    instances = json.loads(instances_path(root, "refcoco").read_text())
    anns = {a["id"]: a for a in instances["annotations"]}
    assert isinstance(anns[101]["segmentation"], list) and anns[101]["iscrowd"] == 0
    assert isinstance(anns[201]["segmentation"]["counts"], str) and anns[201]["iscrowd"] == 1
    assert anns[101]["area"] == 28 and anns[101]["bbox"] == [2, 3, 7, 4]
    assert {c["id"] for c in instances["categories"]} == {1, 18}


@pytest.mark.parametrize("split, ref_ids", [
    ("train", [0]), ("val", [1, 2]), ("testA", [3]), ("testB", [4]), (None, [0, 1, 2, 3, 4]),
])
def test_load_splits(data_root, split, ref_ids):
    root, _ = data_root
    records = load_refcoco(root, "refcoco", split=split)
    assert [r.ref_id for r in records] == ref_ids


def test_records_and_masks(data_root):
    root, info = data_root
    records = {r.ref_id: r for r in load_refcoco(root, "refcoco", split=None)}
    rec = records[1]
    assert rec.image_path == root / IMAGE_DIR / "COCO_train2014_000000581857.jpg"
    assert rec.image_path.is_file()
    assert (rec.height, rec.width) == (12, 16)
    assert rec.sentences == ("the dog", "brown dog top right", "dog")
    assert rec.raw_sentences == ("the dog", "brown dog top right", "Dog.")
    assert rec.sent_ids == (1, 2, 3)
    for ref in info["refs"]:
        record = records[ref["ref_id"]]
        mask = ref_mask(record)
        assert mask.dtype == bool
        np.testing.assert_array_equal(mask, info["masks"][ref["ann_id"]])


def test_sentence_items(data_root):
    root, _ = data_root
    items = sentence_items(load_refcoco(root, "refcoco", split="val"))
    assert [(i, s) for i, _, s in items] == [
        ("1_1", "the dog"), ("1_2", "brown dog top right"), ("1_3", "dog"),
        ("2_4", "l shape"), ("2_5", "the letter"),
    ]


@pytest.mark.parametrize("dataset", ["refcoco", "refcoco+", "refcocog"])
def test_default_split_by_per_dataset(tmp_path, dataset):
    build_refcoco_root(tmp_path, dataset)
    assert (tmp_path / dataset / f"refs({DEFAULT_SPLIT_BY[dataset]}).p").is_file()
    assert len(load_refcoco(tmp_path, dataset, split="val")) == 2


def test_explicit_split_by(tmp_path):
    build_refcoco_root(tmp_path, "refcocog", split_by="google")
    assert len(load_refcoco(tmp_path, "refcocog", split_by="google", split="val")) == 2
    with pytest.raises(FileNotFoundError, match=r"refs\(umd\)\.p.*refs\(google\)\.p"):
        load_refcoco(tmp_path, "refcocog", split="val")


def test_errors_name_the_problem(data_root):
    root, _ = data_root
    with pytest.raises(ValueError, match=r"unknown split 'test'.*'testA', 'testB'"):
        load_refcoco(root, "refcoco", split="test")
    with pytest.raises(ValueError, match="unknown RefCOCO-family dataset"):
        load_refcoco(root, "refclef")
    with pytest.raises(FileNotFoundError, match=r"refs\(google\)\.p"):
        load_refcoco(root, "refcoco", split_by="google")
    ref_file = refs_path(root, "refcoco")
    refs = read_refs(ref_file)
    refs[2]["ann_id"] = 999
    ref_file.write_bytes(pickle.dumps(refs))
    with pytest.raises(KeyError, match=r"ref 2 has ann_id 999, not in .*instances\.json"):
        load_refcoco(root, "refcoco", split="val")
    refs[2]["ann_id"], refs[2]["image_id"] = 201, 77
    ref_file.write_bytes(pickle.dumps(refs))
    with pytest.raises(KeyError, match="image_id 77"):
        load_refcoco(root, "refcoco", split="val")
    del refs[0]["sentences"]
    ref_file.write_bytes(pickle.dumps(refs))
    with pytest.raises(ValueError, match=r"ref #0 lacks key\(s\) \['sentences'\]"):
        read_refs(ref_file)


def test_segmentation_edge_cases():
    # A polygon of 2 points encloses nothing; it must not be read as a bounding box.
    empty = segmentation_to_mask([[1, 1, 5, 5]], 8, 8)
    assert empty.shape == (8, 8) and not empty.any()
    mask = segmentation_to_mask([[1, 1, 5, 5], [0, 0, 2, 0, 2, 2, 0, 2]], 8, 8)
    assert mask.sum() == 4 and mask[:2, :2].all()


@pytest.mark.parametrize("segmentation, message", [
    ([], "empty polygon list"),
    ([[0, 0, 1, 1, 2]], "odd number"),
    ([["a", 0, 1, 1, 2, 2]], "not a flat list"),
    ({"size": [4, 4], "counts": [16]}, r"size \[4, 4\] does not match"),
    ({"size": [4, 5], "counts": [3, 4]}, "cover 7 pixels"),
    ({"size": [4, 5], "counts": [25, -5]}, "negative"),
    ({"size": [4, 5], "counts": "5220"}, "cover 11 pixels"),  # runs 5, 2, 2, 2
    ({"size": [4, 5], "counts": "52\x7f"}, "invalid character"),
    ({"size": [4, 5], "counts": "5Z"}, "ends in the middle"),
    ({"counts": "5220003"}, "neither a polygon list nor an RLE"),
])
def test_bad_segmentations(segmentation, message):
    with pytest.raises(ValueError, match=message):
        validate_segmentation(segmentation, 4, 5)


def test_rle_string_round_trip():
    mask = expected_masks()[201]
    rle = encode_mask(mask)
    validate_segmentation(rle, 10, 8)
    np.testing.assert_array_equal(segmentation_to_mask(rle, 10, 8), mask)
    rle_bytes = {"size": rle["size"], "counts": rle["counts"].encode()}
    np.testing.assert_array_equal(segmentation_to_mask(rle_bytes, 10, 8), mask)


def test_rle_string_runs_match_pycocotools():
    """The pure-Python counts decoder (used to validate before pycocotools touches memory)
    agrees with pycocotools' own encoder on random masks, long runs included."""
    from mpr_cma.datasets.rle import rle_run_lengths

    rng = np.random.default_rng(0)
    for density in (0.02, 0.5, 0.98):
        mask = rng.random((37, 53)) < density
        mask[:, :20] = density > 0.5  # long runs need several 5-bit chunks
        runs = uncompressed_rle(mask)["counts"]
        assert rle_run_lengths(encode_mask(mask)["counts"]) == runs


def test_numpy_scalars_are_accepted():
    """Annotations built with numpy (e.g. by a generator) rasterise like plain Python ones."""
    poly = [np.float32(v) for v in (2, 3, 9, 3, 9, 7, 2, 7)]
    np.testing.assert_array_equal(segmentation_to_mask([poly], 12, 16), expected_masks()[101])
    rle = uncompressed_rle(expected_masks()[202])
    rle_np = {"size": rle["size"], "counts": [np.int64(c) for c in rle["counts"]]}
    np.testing.assert_array_equal(segmentation_to_mask(rle_np, 10, 8), expected_masks()[202])
