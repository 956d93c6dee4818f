"""A Ref-DAVIS17 valid split written by the tests, keyed the way VISA wrote Sa2VA's pickle.

meta_expressions.json is ReferFormer's format (no "anno_id"; "obj_id" a string), videos not
in name order in the file. "gold-fish" has 3 objects x 4 expressions = 12 expression ids,
so string order ("0", "1", "10", "11", "2", ...) and natural order differ; the expressions
cycle through the objects (exp k -> object k % 3 + 1), so the two orders pick other objects.

`visa_mask_dict` is an independent re-implementation of VISA's writer
(utils/d2_datasets/refytvos_utils.py: ``prepare_metas`` numbers expressions by sorted video,
then string-sorted expression id, from 0 across videos; ``encode_anno_mask`` stores per
frame pycocotools' RLE (bytes counts) of ``label_map == obj_id``, or None when empty).

Layouts: "sa2va" = Sa2VA's folders (``video_datas/davis17/valid/{JPEGImages,mask_dict.pkl}``
+ ``video_datas/davis17/meta_expressions/valid/meta_expressions.json``), "mpr_cma" = ours
(``davis17/valid/`` holding all three).
"""

import json
import pickle
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

H, W = 16, 20
# video -> (number of objects, expression ids -> object id, number of frames)
VIDEOS = {
    "gold-fish": (3, {str(k): k % 3 + 1 for k in range(12)}, 3),
    "bike-packing": (2, {"0": 1, "1": 2, "2": 2, "3": 1}, 3),
    "dogs-jump": (3, {str(k): [2, 1, 3, 3, 1, 2, 1, 2, 3, 2, 1][k] for k in range(11)}, 2),
    "car-shadow": (1, {"0": 1, "1": 1}, 2),
}
FILE_ORDER = ["gold-fish", "bike-packing", "dogs-jump", "car-shadow"]  # not sorted
NUM_EXPRESSIONS = sum(len(v[1]) for v in VIDEOS.values())  # 29
# Expressions predicted empty by `write_predictions` (objects present on every frame).
EMPTY_PREDICTIONS = {("gold-fish", "10"), ("dogs-jump", "4")}


def label_maps(video: str) -> list[np.ndarray]:
    """Per frame (H, W) uint8, pixel = object id (0 = background): one box per object,
    moving one pixel right per frame; object 2 of bike-packing leaves on the last frame."""
    num_objects, _, num_frames = VIDEOS[video]
    maps = []
    for t in range(num_frames):
        labels = np.zeros((H, W), np.uint8)
        for obj in range(1, num_objects + 1):
            if video == "bike-packing" and obj == 2 and t == num_frames - 1:
                continue
            top, left = 1 + 5 * (obj - 1), 1 + 3 * obj + t
            labels[top:top + 4, left:left + 3 + obj] = obj
        maps.append(labels)
    return maps


def frames(video: str) -> list[str]:
    return [f"{t:05d}" for t in range(VIDEOS[video][2])]


def meta_videos(videos: list[str] | None = None) -> dict:
    """ReferFormer-style {"videos": ...} content, in FILE_ORDER, expression ids in order."""
    return {video: {"expressions": {e: {"exp": f"{video} expression {e}", "obj_id": str(o)}
                                    for e, o in VIDEOS[video][1].items()},
                    "frames": frames(video)}
            for video in FILE_ORDER if videos is None or video in videos}


def visa_numbering(videos: dict) -> dict[tuple[str, str], int]:
    """VISA's anno_id of each (video, exp_id), re-implemented from its prepare_metas."""
    numbering, anno_count = {}, 0
    for vid in sorted(list(videos.keys())):
        for exp_id in sorted(list(videos[vid]["expressions"].keys())):
            numbering[vid, exp_id] = anno_count
            anno_count += 1
    return numbering


def visa_mask_dict(videos: dict) -> dict[str, list]:
    """{str(anno_id): [RLE with bytes counts or None per sorted frame]} as VISA wrote it."""
    out = {}
    for (vid, exp_id), anno_id in visa_numbering(videos).items():
        obj = int(videos[vid]["expressions"][exp_id]["obj_id"])
        per_frame = []
        for labels in label_maps(vid):
            mask = labels == obj
            per_frame.append(mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
                             if mask.any() else None)
        out[str(anno_id)] = per_frame
    return out


def truth_mask(video: str, exp_id: str) -> np.ndarray:
    """(T, H, W) bool: the expression's object on every frame."""
    obj = VIDEOS[video][1][exp_id]
    return np.stack([labels == obj for labels in label_maps(video)])


def write_ref_davis(root: Path, layout: str = "sa2va",
                    videos: list[str] | None = None) -> dict[str, Path]:
    """Write the split (or only `videos` of it) under DATA_ROOT `root`; returns {"split",
    "meta", "mask_dict"}."""
    base = root / ("video_datas" if layout == "sa2va" else "") / "davis17"
    split = base / "valid"
    meta = (base / "meta_expressions" / "valid" if layout == "sa2va" else split)
    meta = meta / "meta_expressions.json"
    content = meta_videos(videos)
    for video in content:
        folder = split / "JPEGImages" / video
        folder.mkdir(parents=True, exist_ok=True)
        for name, labels in zip(frames(video), label_maps(video), strict=True):
            Image.fromarray(np.repeat(labels[..., None] * 60, 3, axis=2)).save(
                folder / f"{name}.jpg")
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"videos": content}))
    mask_dict = split / "mask_dict.pkl"
    mask_dict.write_bytes(pickle.dumps(visa_mask_dict(content)))
    return {"split": split, "meta": meta, "mask_dict": mask_dict}


def write_predictions(path: Path) -> Path:
    """Sa2VA results.json {video: {exp_id: {"frames", "prediction_masks"}}}: the true
    object's masks, except EMPTY_PREDICTIONS (empty masks)."""
    out: dict = {}
    for video in FILE_ORDER:
        for exp_id in VIDEOS[video][1]:
            masks = truth_mask(video, exp_id)
            if (video, exp_id) in EMPTY_PREDICTIONS:
                masks = np.zeros_like(masks)
            rles = []
            for m in masks:
                rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
                rles.append({"size": list(rle["size"]), "counts": rle["counts"].decode()})
            out.setdefault(video, {})[exp_id] = {"frames": frames(video),
                                                 "prediction_masks": rles}
    path.write_text(json.dumps(out))
    return path


def natural_numbering(videos: dict) -> dict[tuple[str, str], int]:
    """The rule this project used before (numeric order of digit ids): for the tests that
    show the fixture tells the two rules apart."""
    numbering = {}
    for vid in sorted(videos):
        for exp_id in sorted(videos[vid]["expressions"], key=int):
            numbering[vid, exp_id] = len(numbering)
    return numbering
