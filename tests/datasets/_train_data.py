"""Tiny data roots in the real layouts for the training-dataset tests (hand-drawn masks)."""

import contextlib
import json
import logging
import pickle
from pathlib import Path

import numpy as np
from mmengine.logging import MMLogger
from PIL import Image

from mpr_cma.datasets.refcoco_format import write_refcoco
from mpr_cma.datasets.refvos_format import write_refvos_split

IMAGE_DIR = Path("coco2014") / "train2014"
# Sizes of the tiny configs (configs/tiny/sa2va_mba_tiny.py): 56 px tiles of 4 tokens,
# SAM-2 at 64 px.
TINY = dict(tokenizer="tiny", mllm_image_size=56, num_image_tokens_per_tile=4,
            sam2_image_size=64)


def image_name(image_id: int) -> str:
    return f"COCO_train2014_{image_id:012d}.jpg"


def _pixels(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def refcoco_masks() -> dict[int, np.ndarray]:
    """Ground truth per ann_id: polygon [x0,y0, x1,y0, x1,y1, x0,y1] covers rows y0..y1-1
    and columns x0..x1-1 in pycocotools' rasterisation."""
    m = {k: np.zeros((24, 32), bool) for k in (11, 12, 13)}
    m[11][2:10, 3:12] = True
    m[12][12:20, 20:30] = True
    m[13][5:8, 15:18] = True
    m[21] = np.zeros((20, 16), bool)
    m[21][4:15, 2:6] = True
    return m


def write_refcoco_root(root: Path) -> dict:
    """Two train images: 581857 (24x32, 3 refs, polygons) and 9 (20x16, one RLE ref)."""
    masks = refcoco_masks()
    images = [{"id": 581857, "file_name": image_name(581857), "height": 24, "width": 32},
              {"id": 9, "file_name": image_name(9), "height": 20, "width": 16}]
    (root / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    for k, img in enumerate(images):
        Image.fromarray(_pixels(img["height"], img["width"], k)).save(
            root / IMAGE_DIR / img["file_name"])
    annotations = [
        {"id": 11, "image_id": 581857, "category_id": 1,
         "segmentation": [[3, 2, 12, 2, 12, 10, 3, 10]]},
        {"id": 12, "image_id": 581857, "category_id": 2,
         "segmentation": [[20, 12, 30, 12, 30, 20, 20, 20]]},
        {"id": 13, "image_id": 581857, "category_id": 3,
         "segmentation": [[15, 5, 18, 5, 18, 8, 15, 8]]},
        {"id": 21, "image_id": 9, "category_id": 1, "segmentation": masks[21]},
    ]
    refs = [
        {"ref_id": 0, "ann_id": 11, "split": "train", "sentences": ["man on the left"]},
        {"ref_id": 1, "ann_id": 12, "split": "train", "sentences": ["the brown dog"]},
        {"ref_id": 2, "ann_id": 13, "split": "train", "sentences": ["small red ball"]},
        {"ref_id": 3, "ann_id": 21, "split": "train", "sentences": ["tall pole"]},
        {"ref_id": 4, "ann_id": 21, "split": "val", "sentences": ["pole"]},
    ]
    write_refcoco(root, "refcoco", images, annotations, refs)
    return {"masks": masks, "sentences": {11: "man on the left", 12: "the brown dog",
                                          13: "small red ball", 21: "tall pole"}}


def corrupt_refcoco_root(root: Path) -> None:
    """Add three bad train images: a corrupt JPEG, an undecodable RLE, a missing ann_id."""
    inst_file = root / "refcoco" / "instances.json"
    inst = json.loads(inst_file.read_text())
    for image_id in (100, 200):
        inst["images"].append({"id": image_id, "file_name": image_name(image_id),
                               "height": 20, "width": 16})
    (root / IMAGE_DIR / image_name(100)).write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    Image.fromarray(_pixels(20, 16, 5)).save(root / IMAGE_DIR / image_name(200))
    inst["annotations"] += [
        {"id": 101, "image_id": 100, "category_id": 1, "iscrowd": 0, "area": 4.0,
         "bbox": [0, 0, 2, 2], "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]]},
        {"id": 201, "image_id": 200, "category_id": 1, "iscrowd": 1, "area": 4.0,
         "bbox": [0, 0, 2, 2], "segmentation": {"size": [20, 16], "counts": "!!bad"}},
    ]
    inst_file.write_text(json.dumps(inst))
    ref_file = root / "refcoco" / "refs(unc).p"
    refs = pickle.loads(ref_file.read_bytes())
    for ref_id, ann_id, image_id in ((10, 101, 100), (20, 201, 200), (30, 999, 9)):
        refs.append({"ref_id": ref_id, "ann_id": ann_id, "image_id": image_id,
                     "category_id": 1, "split": "train", "sent_ids": [ref_id],
                     "sentences": [{"raw": "bad", "sent": "bad", "tokens": ["bad"],
                                    "sent_id": ref_id}],
                     "file_name": image_name(image_id)})
    ref_file.write_bytes(pickle.dumps(refs))


def video_masks() -> dict[str, np.ndarray]:
    """(T, H, W) per anno_id: a box moving one pixel right per frame."""
    out = {}
    for anno, (top, frames) in {"0": (2, 4), "1": (10, 4), "2": (4, 3)}.items():
        m = np.zeros((frames, 16, 20), bool)
        for t in range(frames):
            m[t, top:top + 4, 2 + t:8 + t] = True
        out[anno] = m
    return out


def write_refvos_root(root: Path) -> dict:
    """A split with video "v1" (4 frames, 2 expressions, one of them on 2 anno_ids) and "v2"
    (3 frames, 1 expression)."""
    masks = video_masks()
    videos = {
        "v1": {"masks": {"0": masks["0"], "1": masks["1"]},
               "images": np.stack([_pixels(16, 20, t) for t in range(4)]),
               "expressions": {"0": {"exp": "the cat jumping", "anno_id": ["0"]},
                               "1": {"exp": "both animals", "anno_id": ["0", "1"]}}},
        "v2": {"masks": {"2": masks["2"]},
               "images": np.stack([_pixels(16, 20, 10 + t) for t in range(3)]),
               "expressions": {"0": {"exp": "Which one is moving?", "anno_id": ["2"]}}},
    }
    write_refvos_split(root, videos)
    return {"masks": masks}


def write_llava_root(root: Path) -> Path:
    """llava.json with one image conversation (2 turns) and one text-only conversation."""
    root.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_pixels(30, 40, 7)).save(root / "chat.jpg")
    entries = [
        {"id": "img0", "image": "chat.jpg", "conversations": [
            {"from": "human", "value": "<image>\nWhat is shown?"},
            {"from": "gpt", "value": "Noise."},
            {"from": "human", "value": "Any colour?"},
            {"from": "gpt", "value": "Many."}]},
        {"id": "txt0", "conversations": [
            {"from": "human", "value": "Say hi."}, {"from": "gpt", "value": "Hi."}]},
    ]
    (root / "llava.json").write_text(json.dumps(entries))
    return root


@contextlib.contextmanager
def captured_log():
    """Messages logged through mmengine's current logger (print_log(logger="current"))."""
    records: list[str] = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = lambda record: records.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
