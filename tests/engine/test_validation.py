"""Validation during training: the val items, and a tiny training run (1 process, DeepSpeed,
gloo) that validates every 4 iterations and writes the metrics to scalars.json and to
TensorBoard event files."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mpr_cma.engine.validation import ReferValDataset, predict_items, spread
from mpr_cma.models.inference import predict_image, predict_video
from tests.models.test_inference_encoding import CallCounter, picture
from tests.models.test_sa2va import build
from tests.scripts._drivers import ROOT, make_quick_data


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_quick_data(tmp_path_factory.mktemp("quick") / "data")


def test_spread():
    assert spread(10, 3) == [0, 4, 9] and spread(3, 5) == [0, 1, 2] and spread(4, None) == [
        0, 1, 2, 3]
    with pytest.raises(ValueError, match="at least 1"):
        spread(4, 0)


def test_val_items_of_two_splits(data):
    dataset = ReferValDataset(data, [dict(dataset="refcoco", split="val"),
                                     dict(dataset="mevis_u", split="valid_u")], max_items=2)
    assert len(dataset) == 4 and dataset.metainfo["sources"] == ["mevis_u_valid_u",
                                                                 "refcoco_val"]
    image, video = dataset[0], dataset[3]
    assert image["kind"] == "image" and image["gt"].shape == image["image"].size[::-1]
    assert image["image_path"].endswith(".jpg")
    assert video["kind"] == "video" and video["gt"].shape[0] == len(video["frames"])
    with pytest.raises(FileNotFoundError, match="refcocog val"):
        ReferValDataset(data, [dict(dataset="refcocog", split="val")])


def test_a_batch_encodes_each_image_once_with_the_masks_of_one_by_one():
    model = build("sa2va_mba_tiny.py").eval()
    a, b = picture(seed=1), picture(h=30, w=44, seed=2)
    frames = [picture(seed=t) for t in (3, 4)]

    def image_item(key, image, path, text):
        return {"source": "refcoco_val", "kind": "image", "key": key, "text": text,
                "image": image, "image_path": path, "gt": np.zeros(image.size[::-1], bool)}

    batch = [image_item(0, a, "a.jpg", "the red circle"),
             {"source": "mevis_u_valid_u", "kind": "video", "key": "v/0",
              "text": "the square that stops", "frames": frames,
              "gt": np.zeros((2, 50, 40), bool)},
             image_item(1, b, "b.jpg", "the blue square"),
             image_item(2, a, "a.jpg", "the small one")]
    answer = "It is [SEG]."
    vit = model.mllm.vision_model
    with CallCounter(vit) as calls:
        outputs = predict_items(model, batch, answer=answer)
    assert calls.calls == 3          # a.jpg once for its two sentences, b.jpg, the video
    assert [o["key"] for o in outputs] == [0, "v/0", 1, 2]
    for item, out in zip(batch, outputs, strict=True):
        if item["kind"] == "image":
            alone = predict_image(model, item["image"], item["text"], answer=answer)["mask"]
        else:
            alone = predict_video(model, item["frames"], item["text"], answer=answer)["masks"]
        assert out["pred"].dtype == bool and np.array_equal(out["pred"], alone)
        assert out["source"] == item["source"] and out["gt"] is item["gt"]


@pytest.mark.slow
def test_tiny_run_logs_val_metrics_to_scalars_and_tensorboard(data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    work = tmp_path / "train"
    options = ["max_epochs=3", "warmup_ratio=0.25", "val_interval=4", "val_items=2",
               "val_answer=It is [SEG].", "use_tensorboard=True", "log_interval=4"]
    proc = subprocess.run(
        [sys.executable, "tools/train.py", "configs/tiny/demo_val.py", "--work-dir", str(work),
         "--data-root", str(data), "--cfg-options", *options], cwd=ROOT,
        env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (scalars,) = work.glob("*/vis_data/scalars.json")
    records = [json.loads(line) for line in scalars.read_text().splitlines()]
    val = [r for r in records if "refcoco_val/cIoU" in r]
    train = [r for r in records if "loss" in r]
    # 28 training samples an epoch (the quick data's 12 RefCOCO images, 4 of its attribute
    # root, 3 x its 4 videos; configs/tiny/demo.py) / batch 2 = 14 per epoch, 42 in all;
    # the last one logged (log_interval 4) is 40; validation every 4 and after the last
    iterations = train[-1]["iter"]
    assert iterations == 40 and [r["step"] for r in val] == [*range(4, 41, 4), 42]
    for r in val:   # forced answers: masks are scored
        assert 0.0 <= r["refcoco_val/cIoU"] <= 1.0 and 0.0 <= r["mevis_u_valid_u/J&F"] <= 1.0
        assert r["refcoco_val/num_items"] == 2 and r["mevis_u_valid_u/num_items"] == 2
    (events,) = work.glob("*/vis_data/events.out.tfevents.*")
    tags = EventAccumulator(str(events)).Reload().Tags()["scalars"]
    assert {"loss", "lr", "loss_mask", "refcoco_val/cIoU", "mevis_u_valid_u/J&F"} <= set(tags)
