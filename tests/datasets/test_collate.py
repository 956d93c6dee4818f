"""sa2va_collate on mixed image + video + chat batches, the sampler, and the tiny model."""

from pathlib import Path

import pytest
import torch

from mpr_cma.datasets.collate import sa2va_collate
from mpr_cma.datasets.refcoco import RefCOCODataset
from mpr_cma.datasets.refvos import RefVOSDataset
from mpr_cma.datasets.samplers import ConcatDataset, LengthGroupedSampler, dataset_lengths
from mpr_cma.datasets.vqa import LLaVADataset
from mpr_cma.engine.config import load_config
from mpr_cma.models.mllm.template import IGNORE_INDEX
from mpr_cma.registry import DATASETS, FUNCTIONS, MODELS
from tests.datasets._train_data import (
    TINY,
    write_llava_root,
    write_refcoco_root,
    write_refvos_root,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_refcoco_root(root)
    write_refvos_root(root / "mevis" / "train")
    write_llava_root(root / "llava")
    common = dict(seed=0, **TINY)
    return {
        "image": RefCOCODataset(root, max_tiles=2, **common),
        "video": RefVOSDataset(root / "mevis" / "train", num_frames=2, **common),
        "chat": LLaVADataset(root / "llava", ann_file="llava.json", max_tiles=2, seed=0,
                             tokenizer="tiny", mllm_image_size=56, num_image_tokens_per_tile=4),
    }


def test_chat_samples(datasets):
    chat = datasets["chat"]
    image, text = chat[0], chat[1]
    assert image["image_flags"].tolist() == [1] * image["pixel_values"].shape[0]
    assert text["pixel_values"].shape == (1, 3, 56, 56) and text["image_flags"].tolist() == [0]
    tok = chat.tokenizer
    sup = tok.decode([t for t, lab in zip(text["input_ids"], text["labels"], strict=True)
                      if lab != IGNORE_INDEX])
    assert sup == "Hi.<|im_end|>"
    assert chat.modality_length[1] < 0 < chat.modality_length[0]
    assert "masks" not in text


def test_collate_mixed_batch(datasets):
    samples = [datasets["image"][0], datasets["video"][1], datasets["chat"][1],
               datasets["chat"][0]]
    batch = FUNCTIONS.get("sa2va_collate")(samples)
    assert batch["data_samples"] is None
    data = batch["data"]
    lengths = [s["input_ids"].numel() for s in samples]
    assert data["input_ids"].shape == (4, max(lengths))
    assert data["attention_mask"].sum(1).tolist() == lengths
    for i, s in enumerate(samples):
        assert torch.equal(data["input_ids"][i, :lengths[i]], s["input_ids"])
        assert (data["labels"][i, lengths[i]:] == IGNORE_INDEX).all()
    # the text-only sample's dummy tile is dropped: only real tiles, all flagged 1
    real = [s["pixel_values"] for s in samples if s["image_flags"].all()]
    assert torch.equal(data["pixel_values"], torch.cat(real))
    assert data["image_flags"].tolist() == [1] * data["pixel_values"].shape[0]
    # Sa2VA's draw: always 5 objects (with replacement) per referring sample
    assert [m.shape[0] for m in data["masks"]] == [5, 5, 0, 0]
    assert [g.shape[0] for g in data["g_pixel_values"]] == [1, 2, 0, 0]
    assert [len(s) for s in data["expression_spans"]] == [5, 5, 0, 0]
    assert [len(s) for s in data["sentence_ids"]] == [5, 5, 0, 0]


def test_collate_text_only_batch_keeps_one_dummy_tile(datasets):
    text = datasets["chat"][1]
    data = sa2va_collate([text, text], pad_token_id=7)["data"]
    assert data["pixel_values"].shape == (1, 3, 56, 56) and data["image_flags"].tolist() == [0]
    assert data["g_pixel_values"] is None and [m.numel() for m in data["masks"]] == [0, 0]


def test_length_grouped_sampler(datasets):
    """On the real datasets: a permutation each epoch, the longest sample first (xtuner's
    rule), the same order for the same epoch, and a resume position used once."""
    concat = ConcatDataset([datasets["image"], datasets["video"], datasets["chat"]])
    lengths = dataset_lengths(concat)
    assert len(lengths) == len(concat) == 6
    sampler = LengthGroupedSampler(concat, per_device_batch_size=2, mega_batch_mult=1, seed=0)
    first = list(sampler)
    assert sorted(first) == list(range(6)) and len(sampler) == 6
    assert abs(lengths[first[0]]) == max(abs(n) for n in lengths)
    assert list(sampler) == first  # same epoch, same order
    sampler.set_epoch(1)
    second = list(sampler)
    assert sorted(second) == list(range(6))
    sampler.set_resume_position(4)
    assert len(sampler) == 2 and list(sampler) == second[4:]
    assert len(sampler) == 6  # the resume position is used once


def test_sampler_splits_the_ranks(datasets, monkeypatch):
    import xtuner.dataset.samplers.length_grouped as xtuner_sampler

    concat = ConcatDataset([datasets["image"], datasets["video"], datasets["chat"]])
    per_rank = []
    for rank in (0, 1):
        monkeypatch.setattr(xtuner_sampler, "get_dist_info", lambda r=rank: (r, 2))
        sampler = LengthGroupedSampler(concat, per_device_batch_size=1, seed=5)
        sampler.set_epoch(3)
        per_rank.append(list(sampler))
    assert len(per_rank[0]) == len(per_rank[1]) == 3
    assert sorted(per_rank[0] + per_rank[1]) == list(range(6))


def test_concat_from_configs_and_config_files(tmp_path):
    cfg = load_config(CONFIGS / "mba_1b.py")
    assert cfg.train_dataset.type == "ConcatDataset" and cfg.collate_fn.type == "sa2va_collate"
    parts = cfg.train_dataset.datasets   # each in Sa2VA's repeats (RepeatedDataset)
    assert {d.type for d in parts} == {"RepeatedDataset"}
    assert {d.dataset.type for d in parts} == {"RefCOCODataset", "RefVOSDataset", "LLaVADataset"}
    write_refcoco_root(tmp_path)
    write_refvos_root(tmp_path / "mevis" / "train")
    write_llava_root(tmp_path / "llava")
    tiny = load_config(CONFIGS / "tiny" / "train_tiny_data.py", {"data_root": str(tmp_path)})
    concat = DATASETS.build(tiny.train_dataloader.dataset)
    assert isinstance(concat, ConcatDataset) and len(concat) == 6
    assert concat[0]["pixel_values"].shape[-1] == 56


@pytest.mark.slow
def test_tiny_model_loss_on_a_collated_mixed_batch(datasets):
    torch.manual_seed(0)
    model = MODELS.build(load_config(CONFIGS / "tiny" / "sa2va_mba_tiny.py").model)
    assert model.tokenizer.convert_tokens_to_ids("[SEG]") == datasets[
        "image"].tokenizer.convert_tokens_to_ids("[SEG]")
    samples = [datasets["image"][0], datasets["video"][0], datasets["chat"][1],
               datasets["chat"][0]]
    # through mmengine's data preprocessor, as the runner's train_step does
    batch = model.data_preprocessor(sa2va_collate(samples), True)
    losses = model(**batch, mode="loss")
    assert set(losses) >= {"loss_llm", "loss_mask", "loss_dice", "loss_tmc", "loss_bound"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.text_hidden_fcs[0].weight.grad.abs().sum() > 0
