"""Check a data root before training or evaluation, and report every problem found.

Usage:
    python scripts/verify_data.py DATA_ROOT [--only refcoco refcocog mevis ...]
                                            [--check-images] [--max-examples 10]

DATA_ROOT is laid out as in docs/FORMATS.md (refcoco/, refcoco+/, refcocog/,
coco2014/train2014/, mevis/{train,valid_u,valid}/, davis17/valid/, ref_ytvos/train/) or as
Sa2VA's data/ folder (ref_seg/<dataset>/, glamm_data/images/coco2014/train2014/,
video_datas/{mevis,davis17,rvos}/, meta_expressions/<split>/ beside a split; see
mpr_cma/datasets/layouts.py); --data-layout forces one. Without --only, every known
dataset present under DATA_ROOT is checked.

RefCOCO family: instances.json and the refs pickles are present and readable; every ref's
ann_id and image_id exist; every annotation's segmentation (polygon or RLE) decodes at its
image's size; every referenced image file exists (and with --check-images opens, at the
size instances.json gives).
Referring video (MeViS, Ref-DAVIS17, Ref-YTVOS), through mpr_cma.datasets.refvos_format:
meta_expressions.json (and mask_dict where the split has ground truth) present; frames
exist; every anno_id an expression references exists; every RLE decodes, at the frame size;
each anno_id has one entry per frame. Each split's line says which anno_id rule it applies
(the file's anno_ids, or Sa2VA's numbering: always for davis17 as Sa2VA's eval_davis.py,
and for files without anno_ids). Under Sa2VA's numbering the mask_dict must have been
written the VISA way (one entry per expression, from the object's mask): two expressions of
one video with the same obj_id but different masks mean the numbering does not fit the
mask_dict ("anno_id_object_mismatch"). A corrupt (truncated) file is an "unreadable_file".

Problems are printed grouped by kind with counts; the exit status is 1 when there is any.
Add a dataset by writing a `check_<name>(root, report, check_images)` function and
registering it in CHECKS.
"""

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from mpr_cma.datasets.layouts import LAYOUTS, locate_refcoco, locate_video_split
from mpr_cma.datasets.refcoco_format import (
    DATASETS,
    DEFAULT_SPLIT_BY,
    INSTANCES_FILE,
    read_instances,
    read_refs,
    segmentation_to_mask,
)
from mpr_cma.datasets.refvos_format import DATASET_ANNO_ID_RULES, RefVOSSplit
from mpr_cma.datasets.rle import decode_rle


class Report:
    """Problems grouped by kind, plus notes on what was checked."""

    def __init__(self) -> None:
        self.problems: dict[str, list[str]] = defaultdict(list)
        self.notes: list[str] = []
        self.checked_images: set[Path] = set()  # shared image roots are checked once

    def add(self, kind: str, message: str) -> None:
        self.problems[kind].append(message)

    def count(self, kind: str) -> int:
        return len(self.problems.get(kind, []))

    @property
    def ok(self) -> bool:
        return not any(self.problems.values())

    def format(self, max_examples: int = 10) -> str:
        lines = [f"checked: {note}" for note in self.notes]
        total = sum(len(v) for v in self.problems.values())
        if not total:
            return "\n".join([*lines, "OK: no problems found"])
        lines.append(f"{total} problem(s) in {len(self.problems)} kind(s):")
        for kind in sorted(self.problems):
            messages = self.problems[kind]
            lines.append(f"  {kind}: {len(messages)}")
            lines += [f"    - {m}" for m in messages[:max_examples]]
            if len(messages) > max_examples:
                lines.append(f"    ... and {len(messages) - max_examples} more")
        return "\n".join(lines)


# ------------------------------------------------------------------ RefCOCO family


def _check_image(
    report: Report, path: Path, size: tuple[int, int] | None, check_images: bool
) -> None:
    """File present; with check_images also decodable and, when given, (width, height) == size."""
    if path in report.checked_images:
        return
    report.checked_images.add(path)
    if not path.is_file():
        report.add("missing_image", str(path))
        return
    if not check_images:
        return
    try:
        with Image.open(path) as img:
            img.load()
            actual = img.size
    except OSError as err:
        report.add("unreadable_image", f"{path}: {err}")
        return
    if size is not None and actual != size:
        report.add("image_size_mismatch", f"{path}: (width, height) {actual}, expected {size}")


def _check_annotations(report: Report, where: Path, instances: dict) -> tuple[dict, dict]:
    """Index images and annotations; every annotation's image exists and its mask decodes."""
    images = {img.get("id"): img for img in instances["images"]}
    anns = {}
    annotations = instances["annotations"]
    for i, ann in enumerate(tqdm(annotations, desc=f"{where.parent.name} masks", disable=None)):
        if not {"id", "image_id", "segmentation"} <= set(ann):
            report.add("bad_annotation", f"{where}: annotation #{i} lacks id/image_id/segmentation")
            continue
        anns[ann["id"]] = ann
        image = images.get(ann["image_id"])
        if image is None:
            report.add("dangling_image_id",
                       f"{where}: annotation {ann['id']} -> image_id {ann['image_id']}")
            continue
        try:
            segmentation_to_mask(ann["segmentation"], int(image["height"]), int(image["width"]))
        except (KeyError, TypeError, ValueError) as err:
            report.add("bad_segmentation", f"{where}: annotation {ann['id']}: {err}")
    return images, anns


def _check_refs(report: Report, ref_file: Path, images: dict, anns: dict) -> set:
    """Every ref points at an existing annotation and image; returns the image ids used."""
    try:
        refs = read_refs(ref_file)
    except (OSError, ValueError) as err:  # CorruptFileError / ValueError name the file
        report.add("unreadable_file", str(err))
        return set()
    used = set()
    for ref in refs:
        ref_id, ann_id, image_id = ref["ref_id"], ref["ann_id"], ref["image_id"]
        if ann_id not in anns:
            report.add("dangling_ann_id", f"{ref_file.name}: ref {ref_id} -> ann_id {ann_id}")
        elif anns[ann_id]["image_id"] != image_id and {image_id, anns[ann_id]["image_id"]} <= set(
            images
        ):  # a dangling image id on either side is reported as such, not as a mismatch
            report.add("ref_image_mismatch", f"{ref_file.name}: ref {ref_id} has image_id "
                       f"{image_id}, its annotation {ann_id} is on {anns[ann_id]['image_id']}")
        if image_id not in images:
            report.add("dangling_image_id", f"{ref_file.name}: ref {ref_id} -> image_id {image_id}")
        else:
            used.add(image_id)
        if not ref["sentences"]:
            report.add("no_sentences", f"{ref_file.name}: ref {ref_id}")
    return used


def check_refcoco_dataset(root: Path, dataset: str, report: Report, check_images: bool,
                          layout: str = "auto") -> None:
    """All checks of one RefCOCO-family dataset folder (one instances.json, its pickles)."""
    location = locate_refcoco(root, dataset, layout)
    folder = location.ann_root / dataset
    inst_file = folder / INSTANCES_FILE
    ref_files = sorted(folder.glob("refs(*).p"))
    required = folder / f"refs({DEFAULT_SPLIT_BY[dataset]}).p"
    if required not in ref_files:
        report.add("missing_file", str(required))
    if not inst_file.is_file():
        report.add("missing_file", str(inst_file))
        return
    try:
        instances = read_instances(inst_file)
    except (OSError, ValueError) as err:  # CorruptFileError / ValueError name the file
        report.add("unreadable_file", str(err))
        return
    images, anns = _check_annotations(report, inst_file, instances)
    used = set()
    for ref_file in ref_files:
        used |= _check_refs(report, ref_file, images, anns)
    image_root = location.image_root
    if not image_root.is_dir():
        if image_root not in report.checked_images:
            report.checked_images.add(image_root)
            report.add("missing_image_root", str(image_root))
    else:
        for image_id in sorted(used):
            image = images[image_id]
            try:
                path = image_root / image["file_name"]
                size = (int(image["width"]), int(image["height"]))
            except (KeyError, TypeError, ValueError) as err:
                report.add("bad_image_entry", f"{inst_file}: image {image_id}: {err!r}")
                continue
            _check_image(report, path, size, check_images)
    report.notes.append(f"{dataset}: {len(images)} images, {len(anns)} annotations, "
                        f"{', '.join(f.name for f in ref_files) or 'no refs pickle'} "
                        f"({location.layout} layout: {folder}, images {image_root})")


# ------------------------------------------------------------------ referring video

# {dataset: {split: whether the split ships ground truth (mask_dict)}}; "train" splits are
# read by the training reader, which also takes a mask_dict one folder up (Sa2VA's rvos/).
REFVOS_SPLITS = {
    "mevis": {"train": True, "valid_u": True, "valid": False},
    "davis17": {"valid": True},
    "ref_ytvos": {"train": True},
}


def _rle_key(rle: object) -> object:
    """A hashable form of one mask_dict entry (RLE dict or None), to compare masks cheaply."""
    if not isinstance(rle, dict):
        return rle
    counts = rle.get("counts")
    counts = counts.decode("ascii", "replace") if isinstance(counts, bytes) else counts
    counts = tuple(counts) if isinstance(counts, list) else counts
    return tuple(rle.get("size", ())), counts


def _check_object_consistency(split: RefVOSSplit, mask_dict: dict, report: Report) -> None:
    """Under assigned (Sa2VA/VISA) anno_ids, expressions of one video with the same obj_id
    must have the same masks (VISA wrote each entry from that object's mask)."""
    for video in split.videos:
        first: dict[tuple, tuple[str, str, tuple]] = {}
        for exp in split.expressions(video).values():
            if not exp.obj_ids or any(a not in mask_dict for a in exp.anno_ids):
                continue
            masks = tuple(tuple(_rle_key(r) for r in mask_dict[a] or ()) for a in exp.anno_ids)
            objects = tuple(sorted(str(o) for o in exp.obj_ids))
            if objects not in first:
                first[objects] = (exp.exp_id, ",".join(exp.anno_ids), masks)
            elif first[objects][2] != masks:
                other, other_ids, _ = first[objects]
                report.add("anno_id_object_mismatch", (
                    f"{split.root.name}/{video}: expressions {other} and {exp.exp_id} refer to "
                    f"obj_id {','.join(objects)} but their anno_ids {other_ids} and "
                    f"{','.join(exp.anno_ids)} have different masks in {split.mask_file.name}: "
                    "the anno_id numbering does not fit this mask_dict"))


def _order_notes(split: RefVOSSplit, report: Report) -> None:
    """Notes on orders that Sa2VA's and VISA's code assume (not problems of this reader)."""
    names = list(json.loads(split.meta_file.read_bytes())["videos"])
    if split.anno_id_rule == "sa2va" and names != sorted(names):
        report.notes.append(f"{split.root}: videos are not in name order in "
                            f"{split.meta_file.name}; Sa2VA's Ref-YTVOS training loader numbers "
                            "them in file order, VISA's mask_dict and this reader by name")
    unsorted = [v for v in split.videos if split.frames(v) != sorted(split.frames(v))]
    if unsorted:
        report.notes.append(f"{split.root}: frames not in sorted order in {len(unsorted)} "
                            f"videos (e.g. {unsorted[0]}); VISA's mask_dict and Sa2VA's "
                            "inference use sorted frames, this reader the file's order")


def check_refvos_split(split_root: Path, has_gt: bool, report: Report, check_images: bool,
                       anno_id_rule: str = "auto", mask_in_parent: bool = False) -> None:
    """Files present, frames exist, anno_ids exist (and fit the mask_dict), RLEs decode at the
    frame size and count."""
    try:
        split = RefVOSSplit(split_root, anno_id_rule=anno_id_rule, mask_in_parent=mask_in_parent)
    except (OSError, ValueError) as err:
        report.add("missing_file" if isinstance(err, FileNotFoundError) else "unreadable_file",
                   str(err))
        return
    if has_gt and not split.has_masks:
        report.add("missing_file", f"{split_root}/mask_dict.json (or .pkl)")
    try:
        mask_dict = split.mask_dict if split.has_masks else {}
    except (OSError, ValueError) as err:  # CorruptFileError / ValueError name the file
        report.add("unreadable_file", str(err))
        mask_dict = {}
    assigned = " (assigned by the 'sa2va' rule)" if split.anno_id_rule == "sa2va" else ""
    video_of: dict[str, str] = {}
    sizes: dict[str, tuple[int, int] | None] = {}
    for video in split.videos:
        try:
            sizes[video] = split.frame_size(video)
        except (OSError, ValueError, KeyError, TypeError) as err:  # bad first frame / RLE
            report.add("frame_size_unknown", f"{split_root.name}/{video}: {err!r}")
            sizes[video] = None
        hw = sizes[video] if check_images else None
        for frame in split.frames(video):
            _check_image(report, split.frame_path(video, frame), hw and hw[::-1], check_images)
        for expression in split.expressions(video).values():
            for anno_id in expression.anno_ids:
                video_of.setdefault(anno_id, video)
                if mask_dict and anno_id not in mask_dict:
                    report.add("dangling_anno_id", f"{split_root.name}/{video}/"
                               f"{expression.exp_id} -> anno_id {anno_id}{assigned}")
    if mask_dict and split.anno_id_rule == "sa2va":
        _check_object_consistency(split, mask_dict, report)
    for anno_id, per_frame in mask_dict.items():
        video = video_of.get(anno_id)
        if video is None:
            continue  # unreferenced objects are allowed
        where = f"{split.mask_file.name}: anno_id {anno_id} ({video})"
        n = len(split.frames(video))
        if not isinstance(per_frame, list) or len(per_frame) != n:
            got = len(per_frame) if isinstance(per_frame, list) else type(per_frame).__name__
            report.add("frame_count_mismatch", f"{where}: {got} entries for {n} frames")
            continue
        size = sizes[video]
        for t, rle in enumerate(per_frame):
            if rle is None:
                continue
            try:
                shape = decode_rle(rle, f"frame {t}").shape
            except ValueError as err:
                report.add("bad_rle", f"{where}: {err}")
                continue
            if size is not None and shape != size:
                report.add("mask_size_mismatch", f"{where} frame {t}: {shape}, frames {size}")
    unused = len(set(mask_dict) - set(video_of))
    report.notes.append(f"{split_root}: {len(split.videos)} videos, {len(split)} expressions, "
                        f"{split.describe_anno_ids()}; meta {split.meta_file}, mask_dict "
                        f"{split.mask_file}" + (f" ({unused} entries unreferenced)"
                                                if unused else ""))
    _order_notes(split, report)


def check_refvos_dataset(root: Path, dataset: str, report: Report, check_images: bool,
                         layout: str = "auto") -> None:
    """Every known split folder of MeViS / Ref-DAVIS17 / Ref-YTVOS present under root."""
    folders = {s: locate_video_split(root, dataset, s, layout) for s in REFVOS_SPLITS[dataset]}
    splits = [s for s, folder in folders.items() if folder.is_dir()]
    if not splits:
        report.add("missing_file", f"{root / dataset}/{{{','.join(REFVOS_SPLITS[dataset])}}}")
    for split in splits:
        check_refvos_split(folders[split], REFVOS_SPLITS[dataset][split], report, check_images,
                           DATASET_ANNO_ID_RULES.get(dataset, "auto"),
                           mask_in_parent=split == "train")


CheckFn = Callable[[Path, str, Report, bool, str], None]
CHECKS: dict[str, CheckFn] = {
    **{name: check_refcoco_dataset for name in DATASETS},
    **{name: check_refvos_dataset for name in REFVOS_SPLITS},
}


def dataset_folder(root: Path, name: str, layout: str = "auto") -> Path:
    """The folder of a known dataset in `layout` (auto: ours if present, else Sa2VA's)."""
    if name in DATASETS:
        return locate_refcoco(root, name, layout).ann_root / name
    return locate_video_split(root, name, "x", layout).parent


def verify(root: str | Path, only: list[str] | None = None, check_images: bool = False,
           layout: str = "auto") -> Report:
    """Run the checks of `only` (default: every known dataset present) on `root`."""
    root = Path(root)
    report = Report()
    if not root.is_dir():
        report.add("missing_file", f"data root {root}")
        return report

    def folder(name: str) -> Path:
        if layout != "auto":
            return dataset_folder(root, name, layout)
        ours, theirs = dataset_folder(root, name, "mpr_cma"), dataset_folder(root, name, "sa2va")
        return ours if ours.is_dir() or not theirs.is_dir() else theirs

    names = only if only else [n for n in CHECKS if folder(n).is_dir()]
    if not names:
        report.add("no_datasets", f"{root}: none of {list(CHECKS)} found")
    for name in names:
        if not folder(name).is_dir():
            report.add("missing_file", str(folder(name)))
            continue
        CHECKS[name](root, name, report, check_images, layout)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_root", type=Path)
    parser.add_argument("--only", nargs="+", choices=list(CHECKS), help="datasets to check")
    parser.add_argument("--check-images", action="store_true",
                        help="also open every referenced image (and check its size)")
    parser.add_argument("--max-examples", type=int, default=10,
                        help="problems listed per kind (all are counted)")
    parser.add_argument("--data-layout", choices=list(LAYOUTS), default="auto",
                        help="DATA_ROOT layout: ours (mpr_cma), Sa2VA's, or auto (either)")
    args = parser.parse_args(argv)
    report = verify(args.data_root, args.only, args.check_images, args.data_layout)
    print(report.format(args.max_examples))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
