"""run_refcoco encodes each image once for all its sentences, with per-sentence results.

Fixture: two images, refs in the order A (2 sentences), B (1), A (2), so one image's
sentences are not consecutive; the tiny model, teacher-forced "It is [SEG]." and a greedy
answer pushed to "[SEG][SEG]" (`SegBias`), so every sentence reaches SAM-2. The random
model's masks of one image hardly differ between sentences, so the order of the rows is
checked with a stand-in predictor whose output names its sentence.
"""

import contextlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from mpr_cma.datasets import load_refcoco, sentence_items
from mpr_cma.datasets.refcoco_format import write_refcoco
from mpr_cma.engine import inference_runner
from mpr_cma.engine.inference_runner import group_by_image, run_refcoco
from mpr_cma.models.inference import predict_image
from mpr_cma.models.mllm.preprocess import open_image
from tests.models.test_inference_encoding import CallCounter, SegBias
from tests.models.test_sa2va import build

IMAGE_DIR = Path("coco2014") / "train2014"
SIZES = {1: (24, 32), 2: (20, 16)}
REFS = [(1, ["man on the left", "the left man"]), (2, ["tall pole"]),
        (1, ["the brown dog", "dog"])]


def write_root(root: Path) -> None:
    images = []
    for image_id, (h, w) in SIZES.items():
        name = f"COCO_train2014_{image_id:012d}.jpg"
        images.append({"id": image_id, "file_name": name, "height": h, "width": w})
        (root / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
        pixels = np.random.default_rng(image_id).integers(0, 255, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / IMAGE_DIR / name)
    annotations, refs = [], []
    for ref_id, (image_id, sentences) in enumerate(REFS):
        annotations.append({"id": 10 + ref_id, "image_id": image_id, "category_id": 1,
                            "segmentation": [[2, 2, 10, 2, 10, 12, 2, 12]]})
        refs.append({"ref_id": ref_id, "ann_id": 10 + ref_id, "split": "val",
                     "sentences": sentences})
    write_refcoco(root, "refcoco", images, annotations, refs)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("runner")
    write_root(root)
    return SimpleNamespace(root=root, model=build("sa2va_mba_tiny.py", seed=1),
                           items=sentence_items(load_refcoco(root, "refcoco", split="val")))


def test_group_by_image_keeps_first_seen_order():
    items = [(f"i{k}", SimpleNamespace(image_path=p), "s") for k, p in enumerate("ABACB")]
    assert group_by_image(items, range(5)) == [("A", [0, 2]), ("B", [1, 4]), ("C", [3])]
    assert group_by_image(items, [1, 3, 4]) == [("B", [1, 4]), ("C", [3])]  # a shard
    assert group_by_image(items, []) == []


@pytest.mark.parametrize("kwargs", [{"answer": "It is [SEG]."}, {"max_new_tokens": 2}])
def test_results_match_one_predict_image_per_sentence(setup, tmp_path, kwargs):
    ids = [item_id for item_id, _, _ in setup.items]
    assert len(ids) == 5 and [r.image_path for _, r, _ in setup.items].count(
        setup.items[0][1].image_path) == 4
    vit = setup.model.mllm.vision_model
    sam = setup.model.grounding.sam2_model.image_encoder
    bias = contextlib.nullcontext() if "answer" in kwargs else SegBias(setup.model)
    with bias, CallCounter(vit) as v, CallCounter(sam) as s:
        result = run_refcoco(setup.model, setup.root, "refcoco", "val", progress=False,
                             save_masks_dir=tmp_path, **kwargs)
    assert (v.calls, s.calls) == (len(SIZES), len(SIZES))   # once per image, not sentence
    assert list(result["per_item"]) == ids   # rows in sentence order, not image order
    with bias:
        refs = [predict_image(setup.model, open_image(r.image_path), sentence, **kwargs)
                for _, r, sentence in setup.items]
    for (item_id, _, sentence), ref in zip(setup.items, refs, strict=True):
        row = result["per_item"][item_id]
        assert ref["has_seg"]
        assert (row["sentence"], row["answer"], row["has_seg"]) == (
            sentence, ref["answer"], ref["has_seg"])
        saved = np.asarray(Image.open(tmp_path / f"{item_id}.png")) > 0
        assert np.array_equal(saved, ref["mask"])


def test_rows_keep_item_order_with_a_stand_in_predictor(setup, tmp_path, monkeypatch):
    calls = []

    def stand_in(model, image, sentences, **kwargs):
        calls.append((image.size, list(sentences)))
        # mask: the first len(sentence) pixels; answer: the sentence itself
        outs = []
        for sentence in sentences:
            mask = np.zeros(image.size[::-1], bool)
            mask.flat[:len(sentence)] = True
            outs.append({"mask": mask, "has_seg": True, "answer": sentence.upper()})
        return outs

    monkeypatch.setattr(inference_runner, "predict_image_sentences", stand_in)
    result = run_refcoco(setup.model, setup.root, "refcoco", "val", progress=False,
                         save_masks_dir=tmp_path)
    # one call per image, its sentences in item order
    assert calls == [((32, 24), ["man on the left", "the left man", "the brown dog", "dog"]),
                     ((16, 20), ["tall pole"])]
    assert list(result["per_item"]) == [item_id for item_id, _, _ in setup.items]
    for item_id, _, sentence in setup.items:
        assert result["per_item"][item_id]["answer"] == sentence.upper()
        saved = np.asarray(Image.open(tmp_path / f"{item_id}.png")) > 0
        assert saved.sum() == len(sentence)


def test_images_are_read_once(setup, monkeypatch):
    opened = []

    def spy(path):
        opened.append(path)
        return open_image(path)

    monkeypatch.setattr(inference_runner, "open_image", spy)
    run_refcoco(setup.model, setup.root, "refcoco", "val", progress=False, answer="No.")
    assert len(opened) == len(set(opened)) == len(SIZES)
