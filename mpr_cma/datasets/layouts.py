"""Where the benchmark files lie: this project's layout and Sa2VA's folders as they are.

Two layouts of one DATA_ROOT are understood (data/README.md shows both trees):

==========================  ==================================  =============================
what                        "mpr_cma" (ours)                    "sa2va" (Sa2VA's README/configs)
==========================  ==================================  =============================
RefCOCO/+/g annotations     <dataset>/instances.json, refs(*).p ref_seg/<dataset>/...
COCO train2014 images       coco2014/train2014/                 glamm_data/images/coco2014/
                                                                train2014/ (its evaluation);
                                                                ref_seg/<dataset>/coco2014/
                                                                train2014/ (its training)
video split folder          <dataset>/<split>/                  video_datas/<dataset>/<split>/
                                                                (Ref-YTVOS: rvos/)
meta_expressions.json       <split folder>/                     the same, or (Ref-DAVIS17,
                                                                Ref-YTVOS) <dataset>/
                                                                meta_expressions/<split>/
mask_dict.json / .pkl       <split folder>/                     the same; Ref-YTVOS train:
                                                                <dataset>/mask_dict.pkl
==========================  ==================================  =============================

Sa2VA's sources: projects/sa2va/evaluation/sa2va_eval_refcoco.py (``ref_seg/``,
``glamm_data/images/coco2014/train2014/``), projects/sa2va/configs/sa2va_in30_8b.py
(``ref_seg/<dataset>`` + ``data_prefix=coco2014/train2014/``; ``rvos/meta_expressions/
train/``, ``rvos/mask_dict.pkl``), projects/sa2va/evaluation/sa2va_eval_ref_vos.py
(``video_datas/davis17/meta_expressions/valid/meta_expressions.json``,
``video_datas/davis17/valid/mask_dict.pkl``).

"auto" (the default everywhere) takes the first layout whose files exist, ours first, so a
root in either layout works without options; "mpr_cma" / "sa2va" force one.
"""

from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "IMAGE_DIR",
    "INSTANCES_FILE",
    "LAYOUTS",
    "MASK_FILES",
    "META_FILE",
    "RefCocoLocation",
    "find_mask_file",
    "find_meta_file",
    "locate_refcoco",
    "locate_video_split",
]

LAYOUTS = ("auto", "mpr_cma", "sa2va")
INSTANCES_FILE = "instances.json"
META_FILE = "meta_expressions.json"
MASK_FILES = ("mask_dict.json", "mask_dict.pkl")
IMAGE_DIR = "JPEGImages"

COCO_IMAGES = Path("coco2014") / "train2014"
SA2VA_REFSEG = Path("ref_seg")
SA2VA_EVAL_IMAGES = Path("glamm_data") / "images" / COCO_IMAGES
SA2VA_VIDEO = Path("video_datas")
# Sa2VA's folder names where they differ from ours (its configs: video_datas/rvos/).
SA2VA_VIDEO_DIRS = {"ref_ytvos": "rvos"}


def _check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"data layout must be one of {LAYOUTS}, got {layout!r}")
    return layout


@dataclass(frozen=True)
class RefCocoLocation:
    """Where one RefCOCO-family dataset lies.

    Attributes:
        ann_root: folder holding ``<dataset>/instances.json`` and ``<dataset>/refs(*).p``
            (DATA_ROOT in our layout, DATA_ROOT/ref_seg in Sa2VA's).
        image_root: folder of the COCO train2014 images.
        layout: "mpr_cma" or "sa2va" (the layout of the annotations).
    """

    ann_root: Path
    image_root: Path
    layout: str


def locate_refcoco(data_root: str | Path, dataset: str, layout: str = "auto",
                   image_root: str | Path | None = None) -> RefCocoLocation:
    """Find a RefCOCO-family dataset under `data_root` in either layout.

    Args:
        data_root: DATA_ROOT.
        dataset: "refcoco", "refcoco+" or "refcocog" (the folder name).
        layout: "auto" (ours when ``<root>/<dataset>/instances.json`` exists, else Sa2VA's
            when ``<root>/ref_seg/<dataset>/instances.json`` does, else ours, so that the
            reader's "not found" error names our path), "mpr_cma" or "sa2va".
        image_root: explicit image folder; default the first existing of
            ``coco2014/train2014``, ``glamm_data/images/coco2014/train2014`` and
            ``ref_seg/<dataset>/coco2014/train2014`` under `data_root` (the forced
            layout's own folders only, when `layout` is not "auto"), else the layout's first.
    """
    root = Path(data_root)
    layout = _check_layout(layout)
    ann_roots = {"mpr_cma": root, "sa2va": root / SA2VA_REFSEG}
    images = {"mpr_cma": [root / COCO_IMAGES],
              "sa2va": [root / SA2VA_EVAL_IMAGES, root / SA2VA_REFSEG / dataset / COCO_IMAGES]}
    if layout == "auto":
        found = [name for name in ("mpr_cma", "sa2va")
                 if (ann_roots[name] / dataset / INSTANCES_FILE).is_file()]
        chosen = found[0] if found else "mpr_cma"
        candidates = images["mpr_cma"] + images["sa2va"]
    else:
        chosen, candidates = layout, images[layout]
    if image_root is None:
        existing = [p for p in candidates if p.is_dir()]
        image_root = existing[0] if existing else images[chosen][0]
    return RefCocoLocation(ann_roots[chosen], Path(image_root), chosen)


def locate_video_split(data_root: str | Path, dataset_dir: str, split: str,
                       layout: str = "auto") -> Path:
    """The split folder of a referring-video dataset (it holds JPEGImages/).

    Args:
        data_root: DATA_ROOT.
        dataset_dir: the dataset's folder name in our layout ("davis17", "mevis",
            "ref_ytvos"; Sa2VA's name of the last is "rvos").
        split: "valid", "valid_u", "train", ...
        layout: "auto" (``<root>/<dataset_dir>/<split>`` when its meta_expressions.json is
            found, else ``<root>/video_datas/<dataset_dir>/<split>`` when that one's is,
            else ours), "mpr_cma" or "sa2va".
    """
    layout = _check_layout(layout)
    folders = {"mpr_cma": Path(data_root) / dataset_dir / split,
               "sa2va": Path(data_root) / SA2VA_VIDEO
               / SA2VA_VIDEO_DIRS.get(dataset_dir, dataset_dir) / split}
    if layout != "auto":
        return folders[layout]
    for name in ("mpr_cma", "sa2va"):
        if find_meta_file(folders[name]) is not None:
            return folders[name]
    return folders["mpr_cma"]


def find_meta_file(split_root: str | Path) -> Path | None:
    """meta_expressions.json of a split: in the split folder, else (Sa2VA's Ref-DAVIS17 /
    Ref-YTVOS, ReferFormer's layout) ``<split folder>/../meta_expressions/<split>/``;
    None when neither exists."""
    split_root = Path(split_root)
    for path in (split_root / META_FILE,
                 split_root.parent / "meta_expressions" / split_root.name / META_FILE):
        if path.is_file():
            return path
    return None


def find_mask_file(split_root: str | Path, in_parent: bool = False) -> Path | None:
    """mask_dict.json, else mask_dict.pkl, of a split folder; with `in_parent` also those
    of the folder above (Sa2VA's ``rvos/mask_dict.pkl`` of Ref-YTVOS train). None when
    there is none (a split without ground truth)."""
    split_root = Path(split_root)
    folders = [split_root, split_root.parent] if in_parent else [split_root]
    for folder in folders:
        for name in MASK_FILES:
            if (folder / name).is_file():
                return folder / name
    return None
