"""RefVOSDataset: the MeViS / ReVOS layout in tmp_path, hand-drawn masks, frame choices."""

import json

import numpy as np
import pytest
import torch

from mpr_cma.datasets.refvos import RefVOSDataset
from mpr_cma.models.mllm.tokenizer import SEG_TOKEN
from tests.datasets._train_data import TINY, captured_log, write_refvos_root


@pytest.fixture
def root(tmp_path):
    split = tmp_path / "mevis" / "train"
    info = write_refvos_root(split)
    return split, info


def build(root, **kw):
    """Distinct expressions (replace=False) unless a test says otherwise; the draw rule has
    its own tests."""
    return RefVOSDataset(root, name="mevis",
                         **{"num_frames": 2, "seed": 0, "replace": False, **TINY, **kw})


def expected(info, anno_ids, frames):
    return np.stack([np.logical_or.reduce([info["masks"][a][t] for a in anno_ids])
                     for t in frames])


@pytest.mark.parametrize("mode", ["random", "first", "uniform"])
def test_masks_frames_and_prompt(root, mode):
    path, info = root
    ds = build(path, frame_mode=mode)
    assert len(ds) == 2
    sample = ds[0]  # video v1: 2 expressions, 4 frames
    meta = sample["meta"]
    key = meta["key_frames"]
    assert meta["sam2_frames"] == key  # Sa2VA: SAM-2 segments the key frames
    if mode == "first":
        assert key == [0, 1]
    elif mode == "uniform":
        assert key == [1, 3]
    assert sample["pixel_values"].shape == (2, 3, 56, 56)
    assert sample["g_pixel_values"].shape == (2, 3, 64, 64)
    masks = sample["masks"]
    assert masks.shape == (2, 2, 16, 20) and masks.dtype == torch.bool
    exps = ds.split.expressions("v1")
    for k, exp_id in enumerate(meta["exp_ids"]):
        gt = expected(info, exps[exp_id].anno_ids, key)
        assert torch.equal(masks[k], torch.from_numpy(gt))
    tok = ds.tokenizer
    context = tok.convert_tokens_to_ids("<IMG_CONTEXT>")
    assert int((sample["input_ids"] == context).sum()) == 2 * 4
    assert tok.decode(sample["input_ids"]).count("<img>") == 2  # one block per key frame
    assert int((sample["input_ids"] == tok.convert_tokens_to_ids(SEG_TOKEN)).sum()) == 2
    for (s, e), exp_id in zip(sample["expression_spans"], meta["exp_ids"], strict=True):
        assert tok.decode(sample["input_ids"][s:e]).strip() == exps[exp_id].exp


def test_own_sam2_frames_and_question_expressions(root):
    path, info = root
    ds = build(path, frame_mode="first", sam2_frames="uniform", sam2_num_frames=3)
    sample = ds[1]  # v2: 3 frames, "Which one is moving?" asked as is
    assert sample["meta"]["key_frames"] == [0, 1]
    assert sample["meta"]["sam2_frames"] == [0, 1, 2]
    assert sample["g_pixel_values"].shape[0] == 3 and sample["masks"].shape == (1, 3, 16, 20)
    assert torch.equal(sample["masks"][0], torch.from_numpy(info["masks"]["2"]))
    (s, e), = sample["expression_spans"]
    assert ds.tokenizer.decode(sample["input_ids"][s:e]) == "Which one is moving?"
    assert ds.modality_length == [2 * 4 + 24 * 2, 2 * 4 + 24 * 1]


def test_random_frames_are_sorted_and_cover_short_videos(root):
    path, _ = root
    ds = build(path, num_frames=5, seed=None)
    for _ in range(5):
        sample = ds[1]  # 3 frames < 5 + 1: Sa2VA draws with replacement
        key = sample["meta"]["key_frames"]
        assert len(key) == 5 and key == sorted(key) and set(key) <= {0, 1, 2}
        assert sample["masks"].shape[1] == 5


def test_default_draw_is_sa2va_exactly_n_expressions_with_replacement(root):
    """Sa2VA03RefVOS.prepare_data: select_number=5 expressions, np.random.choice with
    replacement whatever the video holds; dataset_map_fn: sampled_frames=5 sorted frames,
    with replacement when T <= 5 + 1 (v1: 4 frames, v2: 3)."""
    path, info = root
    seen = set()
    for seed in range(6):
        ds = RefVOSDataset(path, name="mevis", seed=seed, **TINY)
        assert (ds.max_objects, ds.replace, ds.num_frames, ds.frame_mode) == (
            5, True, 5, "random")
        for index, video in enumerate(ds.videos):
            sample = ds[index]
            exp_ids, key = sample["meta"]["exp_ids"], sample["meta"]["key_frames"]
            exps = ds.split.expressions(video)
            assert len(exp_ids) == 5 and set(exp_ids) <= set(exps)
            assert len(set(exp_ids)) < 5   # 2 (or 1) expressions in 5 draws
            frames = len(ds.split.frames(video))
            assert len(key) == 5 and key == sorted(key) and set(key) <= set(range(frames))
            assert len(set(key)) < 5       # 4 (or 3) frames in 5 draws
            assert sample["masks"].shape == (5, 5, 16, 20)
            assert sample["pixel_values"].shape[0] == sample["g_pixel_values"].shape[0] == 5
            for k, exp_id in enumerate(exp_ids):
                gt = expected(info, exps[exp_id].anno_ids, key)
                assert torch.equal(sample["masks"][k], torch.from_numpy(gt))
            seen |= {(video, e) for e in exp_ids}
        assert ds.modality_length == [5 * 4 + 24 * 5] * 2
    assert seen == {("v1", "0"), ("v1", "1"), ("v2", "0")}


@pytest.mark.parametrize("fault", ["missing_anno", "bad_rle", "corrupt_frame"])
def test_bad_samples_are_skipped_and_counted(root, fault):
    path, _ = root
    if fault == "missing_anno":
        meta = json.loads((path / "meta_expressions.json").read_text())
        meta["videos"]["v1"]["expressions"]["0"]["anno_id"] = ["77"]
        (path / "meta_expressions.json").write_text(json.dumps(meta))
    elif fault == "bad_rle":
        masks = json.loads((path / "mask_dict.json").read_text())
        masks["0"][0] = masks["1"][1] = {"size": [16, 20], "counts": "!!"}
        (path / "mask_dict.json").write_text(json.dumps(masks))
    else:
        for frame in (path / "JPEGImages" / "v1").iterdir():
            frame.write_bytes(b"garbage")
    ds = build(path, frame_mode="first", max_objects=2)
    with captured_log() as log:
        sample = ds[0]
    assert sample["meta"]["video"] == "v2"  # v1 skipped, the next video used
    assert sum(ds.skipped.values()) == 1 and len(log) == 1
    assert "video 'v1'" in log[0]
    assert {"missing_anno": "'77'", "bad_rle": "frame 0", "corrupt_frame": "00000.jpg"}[
        fault] in log[0]


def test_wrong_data_root_fails_at_start(tmp_path, root):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        build(tmp_path / "nowhere")
    path, _ = root
    (path / "mask_dict.json").unlink()
    with pytest.raises(ValueError, match="no mask_dict"):
        build(path)
    with pytest.raises(ValueError, match="sam2_frames"):
        build(path, sam2_frames="all")


# ------------------------------------------- Sa2VA's numbering and folders (Ref-DAVIS17)
@pytest.mark.parametrize("layout", ["sa2va", "mpr_cma"])
def test_every_expression_trains_on_its_own_object(tmp_path, layout):
    """VISA-keyed pickle, meta without anno_ids: each sampled expression's masks are its
    object's (tests/datasets/_ref_davis.py; the old natural-order rule got 18 of 29 wrong)."""
    from tests.datasets import _ref_davis as davis

    files = davis.write_ref_davis(tmp_path, layout)
    ds = build(files["split"], max_objects=12, frame_mode="first", max_length=100_000)
    assert ds.split.anno_id_rule == "sa2va" and ds.split.meta_file == files["meta"]
    seen = set()
    for index, video in enumerate(ds.videos):
        for _ in range(3):  # every expression of a video within a few draws of 12
            sample = ds[index]
            assert sample["meta"]["video"] == video
            key = sample["meta"]["key_frames"]
            for k, exp_id in enumerate(sample["meta"]["exp_ids"]):
                truth = torch.from_numpy(davis.truth_mask(video, exp_id)[key])
                assert torch.equal(sample["masks"][k], truth), (video, exp_id)
                seen.add((video, exp_id))
    assert len(seen) == davis.NUM_EXPRESSIONS


def test_sa2va_rvos_folders(tmp_path):
    """Sa2VA's Ref-YTVOS train: rvos/train/JPEGImages, rvos/meta_expressions/train/,
    rvos/mask_dict.pkl (one folder up), no anno_id in the meta."""
    from tests.datasets import _ref_davis as davis

    files = davis.write_ref_davis(tmp_path, "sa2va")
    rvos = tmp_path / "video_datas" / "rvos"
    files["split"].parent.rename(rvos)
    (rvos / "valid").rename(rvos / "train")
    (rvos / "meta_expressions" / "valid").rename(rvos / "meta_expressions" / "train")
    (rvos / "train" / "mask_dict.pkl").rename(rvos / "mask_dict.pkl")
    ds = build(rvos / "train", max_objects=2, frame_mode="first")
    assert ds.split.mask_file == rvos / "mask_dict.pkl"
    sample = ds[ds.videos.index("gold-fish")]
    for k, exp_id in enumerate(sample["meta"]["exp_ids"]):
        truth = davis.truth_mask("gold-fish", exp_id)[sample["meta"]["key_frames"]]
        assert torch.equal(sample["masks"][k], torch.from_numpy(truth))


def test_corrupt_mask_dict_fails_at_start(tmp_path):
    from mpr_cma.datasets import CorruptFileError
    from tests.datasets import _ref_davis as davis

    files = davis.write_ref_davis(tmp_path, "sa2va", videos=["car-shadow"])
    files["mask_dict"].write_bytes(files["mask_dict"].read_bytes()[:20])
    with pytest.raises(CorruptFileError, match=r"mask_dict.pkl: corrupt mask_dict pickle"):
        build(files["split"])
