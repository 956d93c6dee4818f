"""RefCOCODataset: real REFER layout in tmp_path, hand-drawn masks, bad data skipped."""

import pickle

import numpy as np
import pytest
import torch

from mpr_cma.datasets.base import sam2_pixels, sentence_ids
from mpr_cma.datasets.refcoco import RefCOCODataset, num_tiles
from mpr_cma.models.mllm.template import IGNORE_INDEX
from mpr_cma.models.mllm.tokenizer import SEG_TOKEN
from mpr_cma.registry import DATASETS
from tests.datasets._train_data import (
    IMAGE_DIR,
    TINY,
    captured_log,
    corrupt_refcoco_root,
    image_name,
    write_refcoco_root,
)


@pytest.fixture
def root(tmp_path):
    info = write_refcoco_root(tmp_path)
    return tmp_path, info


def build(root, **kw):
    """Distinct refs (replace=False) unless a test says otherwise: most tests check which
    ref each mask and sentence belongs to; the draw rule has its own tests."""
    return RefCOCODataset(root, dataset="refcoco", split="train",
                          **{"max_tiles": 2, "seed": 0, "replace": False, **TINY, **kw})


def test_groups_refs_per_image_and_masks_match_the_drawn_ones(root):
    path, info = root
    ds = build(path)
    assert len(ds) == 2
    for index in range(len(ds)):
        sample = ds[index]
        refs = {r.ref_id: r for r in ds.records}
        picked = [refs[i] for i in sample["meta"]["ref_ids"]]
        ann_ids = [r.ann_id for r in picked]
        assert len(set(ann_ids)) == len(ann_ids) == (3 if index == 0 else 1)
        masks = sample["masks"]
        assert masks.dtype == torch.bool and masks.shape[:2] == (len(ann_ids), 1)
        for k, ann_id in enumerate(ann_ids):
            assert torch.equal(masks[k, 0], torch.from_numpy(info["masks"][ann_id]))
        # expressions in object order, spans decode to them
        tok = ds.tokenizer
        for (start, end), ann_id in zip(sample["expression_spans"], ann_ids, strict=True):
            assert tok.decode(sample["input_ids"][start:end]).strip() == info["sentences"][ann_id]
        assert sample["sentences"] == [info["sentences"][a] for a in ann_ids]
        seg = tok.convert_tokens_to_ids(SEG_TOKEN)
        assert int((sample["input_ids"] == seg).sum()) == len(ann_ids)
        assert torch.equal(sample["sentence_ids"], sentence_ids(sample["sentences"]))


def test_image_inputs_for_mllm_and_sam2(root):
    path, _ = root
    ds = build(path)
    sample = ds[0]  # 32 x 24: closest grid 1 x 1 (ratio 1.33); a 2 x 1 image gets 2 + thumb
    assert num_tiles(32, 24, 2, 56) == 1 and num_tiles(64, 30, 2, 56) == 3
    assert sample["pixel_values"].shape == (1, 3, 56, 56)
    assert sample["image_flags"].tolist() == [1]
    context = ds.tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    assert int((sample["input_ids"] == context).sum()) == 1 * 4
    assert sample["g_pixel_values"].shape == (1, 3, 64, 64)
    labels = sample["labels"]
    assert labels.shape == sample["input_ids"].shape
    assert (labels[labels != IGNORE_INDEX] != context).all()
    assert ds.modality_length == [1 * 4 + 24 * 3, 1 * 4 + 24 * 1]


def test_sam2_pixels_are_sa2va_training_input():
    """Sa2VA's training input: DirectResize (PIL's default resize of the uint8 image) then
    SAM2TrainRunner.preprocess_image (statistics in the fp32 dtype of image / 255)."""
    from PIL import Image

    image = Image.fromarray(torch.randint(0, 255, (30, 20, 3), dtype=torch.uint8).numpy())
    ours = sam2_pixels(image, 64)
    g = torch.from_numpy(np.array(image.resize((64, 64)))).permute(2, 0, 1) / 255.0
    g -= torch.tensor((0.485, 0.456, 0.406), dtype=g.dtype)[:, None, None]
    g /= torch.tensor((0.229, 0.224, 0.225), dtype=g.dtype)[:, None, None]
    torch.testing.assert_close(ours, g, rtol=0, atol=0)


def test_sentence_ids_equal_the_tmc_hash():
    from mpr_cma.losses.tmc import sentence_ids_from_texts

    texts = ["the Dog", "the  dog", "a cat"]
    assert torch.equal(sentence_ids(texts), sentence_ids_from_texts(texts))
    assert sentence_ids(texts)[0] == sentence_ids(texts)[1] != sentence_ids(texts)[2]


def test_default_draw_is_sa2va_exactly_n_with_replacement(root):
    """Sa2VA01RefSeg: np.random.choice(len(instances), num_classes_per_sample=5,
    replace=True) - always 5 turns, an image with fewer refs repeats some of them."""
    path, info = root
    seen = set()
    for seed in range(8):
        ds = RefCOCODataset(path, dataset="refcoco", split="train", max_tiles=2, seed=seed,
                            **TINY)
        assert (ds.max_objects, ds.replace) == (5, True)
        for index, refs_here in ((0, {0, 1, 2}), (1, {3})):
            sample = ds[index]
            picked = sample["meta"]["ref_ids"]
            assert len(picked) == 5 and set(picked) <= refs_here
            # 3 refs (or 1) in 5 draws: some ref is asked twice, each turn with its own mask
            assert len(set(picked)) < len(picked)
            ann = {r.ref_id: r.ann_id for r in ds.records}
            assert sample["masks"].shape[:2] == (5, 1)
            assert len(sample["expression_spans"]) == len(sample["sentences"]) == 5
            for k, ref_id in enumerate(picked):
                assert torch.equal(sample["masks"][k, 0],
                                   torch.from_numpy(info["masks"][ann[ref_id]]))
                assert sample["sentences"][k] == info["sentences"][ann[ref_id]]
            seg = ds.tokenizer.convert_tokens_to_ids(SEG_TOKEN)
            assert int((sample["input_ids"] == seg).sum()) == 5
            # a repeated ref has one sentence id: it is no TMC negative of itself
            ids = sample["sentence_ids"].tolist()
            assert len(set(ids)) == len(set(picked))
            seen |= set(picked)
        assert ds.modality_length == [1 * 4 + 24 * 5] * 2
    assert seen == {0, 1, 2, 3}


def test_distinct_draw_knob(root):
    """replace=False (ours): min(max_objects, refs) distinct refs."""
    path, _ = root
    ds = build(path, replace=False, max_objects=2)
    picked = ds[0]["meta"]["ref_ids"]
    assert len(picked) == len(set(picked)) == 2 and set(picked) <= {0, 1, 2}
    assert ds[1]["meta"]["ref_ids"] == [3]
    assert ds.modality_length == [1 * 4 + 24 * 2, 1 * 4 + 24 * 1]


def test_registered_and_seeded(root):
    path, _ = root
    ds = DATASETS.build(dict(type="RefCOCODataset", data_root=str(path), max_tiles=2,
                             seed=3, **TINY))
    again = build(path, seed=3, replace=True)   # the default draw is Sa2VA's
    assert torch.equal(ds[0]["input_ids"], again[0]["input_ids"])


def test_bad_samples_are_logged_skipped_and_counted(root):
    path, _ = root
    corrupt_refcoco_root(path)
    with captured_log() as log:
        ds = build(path)
    # the ref with a missing ann_id is dropped when the dataset is built, and counted
    assert ds.skipped["missing_ann_id"] == 1
    assert any("ref 30 has ann_id 999, not in" in m and "skipped ref 30" in m for m in log)
    assert len(ds) == 4  # 581857, 9, 100 (corrupt JPEG), 200 (bad RLE)
    index = {ds.records[g[0]].image_id: i for i, g in enumerate(ds.groups)}
    # 100 is corrupt, its replacement 200 has a bad RLE, the next one (wrapping) is used
    with captured_log() as log:
        replaced = ds[index[100]]
    assert replaced["meta"]["image_id"] == ds.records[ds.groups[0][0]].image_id
    assert ds.skipped["OSError"] == 1 and ds.skipped["ValueError"] == 1
    assert len(log) == 2
    assert f"cannot read image {path / IMAGE_DIR / image_name(100)}" in log[0]
    # the count includes ref 30, dropped when the dataset was built
    assert "refs [20]" in log[1] and "RLE" in log[1] and "3 skipped so far" in log[1]


def test_too_many_consecutive_bad_samples_raise(root):
    path, _ = root
    corrupt_refcoco_root(path)
    ds = build(path, max_refetch=1)
    index = {ds.records[g[0]].image_id: i for i, g in enumerate(ds.groups)}
    with pytest.raises(RuntimeError, match="2 consecutive bad samples"):
        ds[index[100]]


def test_wrong_data_root_fails_at_start_naming_the_path(tmp_path, root):
    path, _ = root
    with pytest.raises(FileNotFoundError, match="nowhere"):
        build(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=str(path / "elsewhere")):
        build(path, image_root=path / "elsewhere")
    with pytest.raises(FileNotFoundError, match=r"refs\(google\)"):
        build(path, split_by="google")
    (path / IMAGE_DIR / image_name(9)).unlink()  # a missing image file is a bad sample
    ds = build(path)
    assert ds[1]["meta"]["image_id"] == 581857 and ds.skipped["FileNotFoundError"] == 1


def test_trains_on_the_raw_sentence_as_sa2va(root):
    """Sa2VA's RefCOCO training text is REFER's "raw" sentence, lower-cased, final "." off
    (its mmdet RefCocoDataset + Sa2VA01RefSeg); "sent" (tokens) is the evaluation text."""
    path, _ = root
    ref_file = path / "refcoco" / "refs(unc).p"
    refs = pickle.loads(ref_file.read_bytes())
    for ref in refs:
        if ref["image_id"] == 9:
            ref["sentences"] = [{"raw": "The TALL pole, left.", "sent": "the tall pole left",
                                 "tokens": ["the", "tall", "pole", "left"], "sent_id": 77}]
    ref_file.write_bytes(pickle.dumps(refs))
    sample = build(path)[1]
    assert sample["sentences"] == ["the tall pole, left"]
