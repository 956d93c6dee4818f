"""RefCOCO / RefCOCO+ / RefCOCOg in the REFER layout (lichengunc/refer): reader and writer.

Layout under a data root (see docs/FORMATS.md)::

    <root>/refcoco/   instances.json  refs(unc).p  refs(google).p
    <root>/refcoco+/  instances.json  refs(unc).p
    <root>/refcocog/  instances.json  refs(umd).p  refs(google).p
    <root>/coco2014/train2014/COCO_train2014_000000xxxxxx.jpg

or Sa2VA's (``<root>/ref_seg/<dataset>/...``, images in
``<root>/glamm_data/images/coco2014/train2014``), found by `layouts.locate_refcoco`.

``refs(<split_by>).p`` is a pickled list of refs ({ref_id, ann_id, image_id, category_id,
split, sent_ids, sentences: [{tokens, raw, sent_id, sent}], file_name}); ``file_name`` there
carries an extra ``_<ann_id>`` suffix, so the image file name is taken from
``instances.json`` (COCO style: images, annotations, categories). The mask of a ref is its
annotation rasterised at the image's height x width the way REFER and pycocotools do it:
polygons -> ``frPyObjects`` -> ``merge`` -> ``decode``; RLE (``iscrowd``) is decoded as is
(`refcoco_masks`, which also has Sa2VA's evaluation rule for several polygons).
A corrupt (e.g. truncated) instances.json or refs pickle raises `CorruptFileError`.
"""

import json
import logging
import pickle
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mmengine.logging import print_log
from pycocotools import mask as mask_utils

from mpr_cma.datasets.files import read_json, read_pickle
from mpr_cma.datasets.layouts import COCO_IMAGES, INSTANCES_FILE, locate_refcoco
from mpr_cma.datasets.refcoco_masks import GT_RULES, segmentation_to_mask, validate_segmentation
from mpr_cma.datasets.rle import encode_mask

logger = logging.getLogger(__name__)

DATASETS = ("refcoco", "refcoco+", "refcocog")
DEFAULT_SPLIT_BY = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}
DEFAULT_IMAGE_ROOT = COCO_IMAGES  # our layout: <root>/coco2014/train2014
REF_KEYS = ("ref_id", "ann_id", "image_id", "split", "sentences")

__all__ = [
    "DATASETS",
    "DEFAULT_IMAGE_ROOT",
    "DEFAULT_SPLIT_BY",
    "GT_RULES",
    "INSTANCES_FILE",
    "RefCocoRecord",
    "instances_path",
    "load_refcoco",
    "read_instances",
    "read_refs",
    "ref_mask",
    "refs_path",
    "segmentation_to_mask",
    "sentence_items",
    "validate_segmentation",
    "write_refcoco",
]


@dataclass(frozen=True)
class RefCocoRecord:
    """One referred object (a ref) with everything needed to load its image and mask.

    Attributes:
        ref_id: REFER ref id.
        ann_id: COCO annotation id of the referred object.
        image_id: COCO image id.
        category_id: COCO category id.
        split: The ref's split (e.g. "val", "testA").
        image_path: Path of the image file (image root / file_name from instances.json).
        height: Image height in pixels (from instances.json).
        width: Image width in pixels.
        sentences: The expressions (the normalised ``sent`` field), one evaluation item each.
        sent_ids: The sentences' ids, aligned with `sentences`.
        raw_sentences: The ``raw`` field (original case and punctuation), aligned.
        segmentation: The annotation's segmentation (polygon list or RLE dict).
    """

    ref_id: int
    ann_id: int
    image_id: int
    category_id: int
    split: str
    image_path: Path
    height: int
    width: int
    sentences: tuple[str, ...]
    sent_ids: tuple[int, ...]
    raw_sentences: tuple[str, ...]
    segmentation: Any


def instances_path(root: str | Path, dataset: str) -> Path:
    """Path of ``<root>/<dataset>/instances.json``."""
    return Path(root) / _check_dataset(dataset) / INSTANCES_FILE


def refs_path(root: str | Path, dataset: str, split_by: str | None = None) -> Path:
    """Path of ``<root>/<dataset>/refs(<split_by>).p`` (split_by defaults per dataset)."""
    dataset = _check_dataset(dataset)
    return Path(root) / dataset / f"refs({split_by or DEFAULT_SPLIT_BY[dataset]}).p"


def _check_dataset(dataset: str) -> str:
    if dataset not in DATASETS:
        raise ValueError(f"unknown RefCOCO-family dataset {dataset!r}; expected one of {DATASETS}")
    return dataset


def read_refs(path: str | Path) -> list[dict]:
    """Read a ``refs(<split_by>).p`` pickle and check each ref has the keys used here.

    Raises:
        FileNotFoundError: If the file does not exist (the message lists the pickles that do).
        CorruptFileError: If it cannot be unpickled (e.g. truncated).
        ValueError: If the pickle is not a list of dicts or a ref lacks a key.
    """
    path = Path(path)
    if not path.is_file():
        present = sorted(p.name for p in path.parent.glob("refs(*).p"))
        raise FileNotFoundError(
            f"refs pickle not found: {path} (refs pickles there: {present or 'none'})"
        )
    refs = read_pickle(path, "refs pickle")
    if not isinstance(refs, list):
        raise ValueError(f"{path}: expected a pickled list of refs, got {type(refs).__name__}")
    for i, ref in enumerate(refs):
        missing = [k for k in REF_KEYS if not isinstance(ref, dict) or k not in ref]
        if missing:
            raise ValueError(f"{path}: ref #{i} lacks key(s) {missing}")
    return refs


def read_instances(path: str | Path) -> dict:
    """Read a COCO-style ``instances.json`` and check its top-level keys.

    Raises:
        FileNotFoundError: If the file does not exist.
        CorruptFileError: If it is not valid JSON (e.g. truncated).
        ValueError: If "images" or "annotations" is missing.
    """
    instances = read_json(path, "instances file")
    if not isinstance(instances, dict):
        raise ValueError(f"{path}: expected a COCO dict, got {type(instances).__name__}")
    for key in ("images", "annotations"):
        if key not in instances:
            raise ValueError(f"{path}: missing top-level key {key!r}")
    return instances


def load_refcoco(
    root: str | Path,
    dataset: str = "refcoco",
    split_by: str | None = None,
    split: str | None = "val",
    image_root: str | Path | None = None,
    skipped: Counter | None = None,
    layout: str = "auto",
) -> list[RefCocoRecord]:
    """Load the refs of one split as records, in the pickle's order.

    Args:
        root: Data root holding ``refcoco/``, ``refcoco+/``, ``refcocog/`` (and by default
            ``coco2014/train2014``), or Sa2VA's ``ref_seg/`` and ``glamm_data/`` folders.
        dataset: "refcoco", "refcoco+" or "refcocog".
        split_by: "unc", "google" or "umd"; None picks unc for refcoco/+ and umd for refcocog.
        split: The split to keep (exact match, e.g. "val", "testA"); None keeps every ref.
        image_root: Folder of the images; default that of `layouts.locate_refcoco`
            (``<root>/coco2014/train2014``, else Sa2VA's).
        skipped: When given, a ref whose ann_id or image_id is missing from instances.json
            or that has no sentence is logged with its ids, counted here under
            "missing_<what>" and skipped (training); None raises instead (evaluation).
        layout: "auto", "mpr_cma" or "sa2va" (see `layouts.locate_refcoco`).

    Returns:
        One :class:`RefCocoRecord` per ref of the split.

    Raises:
        FileNotFoundError: If instances.json or the refs pickle is missing.
        CorruptFileError: If one of them cannot be parsed.
        ValueError: If `split` is not in the pickle (the message lists the splits there).
        KeyError: If a ref's ann_id or image_id is not in instances.json (without `skipped`).
    """
    where = locate_refcoco(root, _check_dataset(dataset), layout, image_root)
    ref_file = refs_path(where.ann_root, dataset, split_by)
    inst_file = instances_path(where.ann_root, dataset)
    refs = read_refs(ref_file)
    instances = read_instances(inst_file)
    image_root = where.image_root
    if split is not None:
        available = sorted({ref["split"] for ref in refs})
        if split not in available:
            raise ValueError(f"{ref_file}: unknown split {split!r}; available: {available}")
        refs = [ref for ref in refs if ref["split"] == split]
    anns = {ann["id"]: ann for ann in instances["annotations"]}
    images = {img["id"]: img for img in instances["images"]}
    records = []
    for ref in refs:
        ann, image = anns.get(ref["ann_id"]), images.get(ref["image_id"])
        problem = ("ann_id" if ann is None else "image_id" if image is None
                   else "sentences" if not ref["sentences"] else None)
        if problem is not None:
            message = (f"{ref_file}: ref {ref['ref_id']} has {problem} "
                       f"{ref.get(problem)!r}, not in {inst_file}" if problem != "sentences"
                       else f"{ref_file}: ref {ref['ref_id']} has no sentence")
            if skipped is None:
                raise KeyError(message)
            skipped["missing_" + problem] += 1
            # mmengine's logger: the warning lands in the training log of the work dir.
            print_log(f"{message}; skipped ref {ref['ref_id']} ({sum(skipped.values())} "
                      "skipped)", logger="current", level=logging.WARNING)
            continue
        sentences = ref["sentences"]
        records.append(
            RefCocoRecord(
                ref_id=ref["ref_id"],
                ann_id=ref["ann_id"],
                image_id=ref["image_id"],
                category_id=ref.get("category_id", ann.get("category_id", -1)),
                split=ref["split"],
                image_path=image_root / image["file_name"],
                height=int(image["height"]),
                width=int(image["width"]),
                sentences=tuple(s["sent"] for s in sentences),
                sent_ids=tuple(s["sent_id"] for s in sentences),
                raw_sentences=tuple(s.get("raw", s["sent"]) for s in sentences),
                segmentation=ann["segmentation"],
            )
        )
    logger.info("loaded %d refs of %s(%s) split %s", len(records), dataset, split_by, split)
    return records


def sentence_items(records: Iterable[RefCocoRecord]) -> list[tuple[str, RefCocoRecord, str]]:
    """Evaluation items, one per sentence: (item_id, record, sentence), item_id = "<ref>_<sent>"."""
    return [
        (f"{rec.ref_id}_{sent_id}", rec, sent)
        for rec in records
        for sent_id, sent in zip(rec.sent_ids, rec.sentences, strict=True)
    ]


def ref_mask(record: RefCocoRecord, gt_rule: str = "union") -> np.ndarray:
    """The ground-truth mask of a ref at the image's original resolution.

    Args:
        record: the ref.
        gt_rule: "union" (the true mask) or "sa2va" (Sa2VA's evaluation ground truth of
            annotations made of several polygons; see `refcoco_masks`).

    Returns:
        (H, W) bool array, H x W = record.height x record.width.
    """
    return segmentation_to_mask(record.segmentation, record.height, record.width, gt_rule)


def _complete_annotation(ann: Mapping, image: Mapping) -> dict:
    """Fill area / bbox / iscrowd of an annotation; encode an ndarray segmentation as RLE."""
    out = dict(ann)
    h, w = int(image["height"]), int(image["width"])
    if isinstance(out["segmentation"], np.ndarray):
        out["segmentation"] = encode_mask(out["segmentation"])
    seg = out["segmentation"]
    out.setdefault("iscrowd", 0 if isinstance(seg, list) else 1)
    if "area" not in out or "bbox" not in out:
        m = segmentation_to_mask(seg, h, w)
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        out.setdefault("area", float(mask_utils.area(rle)))
        out.setdefault("bbox", [float(v) for v in mask_utils.toBbox(rle)])
    return out


def _complete_ref(ref: Mapping, ann: Mapping, image: Mapping, next_sent_id: int) -> dict:
    """Fill a ref in the REFER format; plain-string sentences become sentence dicts."""
    out = dict(ref)
    sentences = []
    for sent in ref["sentences"]:
        if isinstance(sent, str):  # REFER: sent = " ".join(tokens), lowercase, no punctuation
            tokens = re.findall(r"[\w']+", sent.lower())
            sent = {"tokens": tokens, "raw": sent, "sent_id": next_sent_id,
                    "sent": " ".join(tokens)}
            next_sent_id += 1
        sentences.append(dict(sent))
    out["sentences"] = sentences
    out["sent_ids"] = [s["sent_id"] for s in sentences]
    out.setdefault("image_id", ann["image_id"])
    out.setdefault("category_id", ann["category_id"])
    out.setdefault("file_name", f"{Path(image['file_name']).stem}_{ref['ann_id']}.jpg")
    return out


def write_refcoco(
    root: str | Path,
    dataset: str,
    images: Sequence[Mapping],
    annotations: Sequence[Mapping],
    refs: Sequence[Mapping],
    split_by: str | None = None,
    categories: Sequence[Mapping] | None = None,
) -> tuple[Path, Path]:
    """Write ``instances.json`` and ``refs(<split_by>).p`` in the REFER layout.

    Image files are not written (the caller puts them under the image root).

    Args:
        root: Data root; files go to ``<root>/<dataset>/``.
        dataset: "refcoco", "refcoco+" or "refcocog".
        images: [{id, file_name, height, width}].
        annotations: [{id, image_id, category_id, segmentation}] where segmentation is a
            polygon list, an RLE dict or an (H, W) ndarray (written as compressed RLE with
            iscrowd 1); area, bbox and iscrowd are filled when absent.
        refs: [{ref_id, ann_id, split, sentences}] where sentences are strings or REFER
            sentence dicts; image_id, category_id, sent_ids and the suffixed file_name are
            filled when absent (string sentences get consecutive sent_ids).
        split_by: Pickle suffix; None picks the dataset's default.
        categories: COCO categories; default one ``category_<id>`` per id used.

    Returns:
        (instances.json path, refs pickle path).

    Raises:
        KeyError: If a ref's ann_id or an annotation's image_id is unknown.
    """
    out_dir = Path(root) / _check_dataset(dataset)
    out_dir.mkdir(parents=True, exist_ok=True)
    image_index = {img["id"]: img for img in images}
    anns = []
    for ann in annotations:
        if ann["image_id"] not in image_index:
            raise KeyError(f"annotation {ann['id']} has unknown image_id {ann['image_id']}")
        anns.append(_complete_annotation(ann, image_index[ann["image_id"]]))
    ann_index = {ann["id"]: ann for ann in anns}
    if categories is None:
        cat_ids = sorted({ann["category_id"] for ann in anns})
        categories = [{"id": c, "name": f"category_{c}", "supercategory": "object"}
                      for c in cat_ids]
    full_refs, next_sent_id = [], 0
    for ref in refs:
        if ref["ann_id"] not in ann_index:
            raise KeyError(f"ref {ref['ref_id']} has unknown ann_id {ref['ann_id']}")
        ann = ann_index[ref["ann_id"]]
        full = _complete_ref(ref, ann, image_index[ann["image_id"]], next_sent_id)
        next_sent_id = max([next_sent_id - 1, *full["sent_ids"]]) + 1
        full_refs.append(full)
    inst_file = out_dir / INSTANCES_FILE
    with inst_file.open("w") as f:
        json.dump({"images": [dict(i) for i in images], "annotations": anns,
                   "categories": [dict(c) for c in categories]}, f)
    ref_file = refs_path(root, dataset, split_by)
    with ref_file.open("wb") as f:
        pickle.dump(full_refs, f)
    return inst_file, ref_file
