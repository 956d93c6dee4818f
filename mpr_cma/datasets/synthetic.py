"""Synthetic referring data: structured expressions, a resolver, writers of the real layouts.

Scenes come from :mod:`mpr_cma.datasets.synthetic_scene`. An expression is first built as a
structured :class:`Ref` (e.g. ``Ref("relation", Desc(shape="square"), "left_of",
Desc("blue", "triangle"))``); :func:`resolve` returns the set of objects it denotes, and only
expressions that denote exactly the intended object(s) - with no borderline comparison
(positions within `margin` pixels, sizes within 25%) - are kept. The text is a template
rendering of the structure (:func:`ref_text`), lowercase without punctuation, so REFER's
``sent`` equals ``raw``.

Image expression kinds: attribute ("the red circle"), relation ("the square left of the blue
triangle"; left of / right of / above / below compare centres), between ("the circle between
the two squares": the centre projects inside the segment joining the two anchors' centres and
lies within 0.3 of its length from it), nearest ("the triangle nearest to the green square"),
size ("the bigger red circle" among exactly two, "the smallest square" among three or more),
ordinal ("the second square from the left"). Structured kinds are only used when the target's
own description matches at least two objects, so the attribute alone is ambiguous.
Video expressions: "the circle moving left", "the square that stops", "the triangle that
stays still", and multi-object ones ("the two squares moving right").

:func:`generate_synthetic` writes, under one data root (the layout of configs/tiny)::

    refcoco/instances.json, refcoco/refs(unc).p      splits train, val, testA, testB
    coco2014/train2014/COCO_train2014_<id:012d>.jpg
    mevis/{train,valid_u}/JPEGImages/<video>/<frame>.jpg, meta_expressions.json, mask_dict.json
    scenes.json                                        the scene descriptions (for checking)
    tiers.json                                         the tier of every expression

tiers.json labels each expression with its tier (:data:`TIERS`; :data:`TIER_OF_KIND`):
``{"refcoco": {"<ref_id>": [tier of each sentence, in order]}, "mevis": {split: {video:
{exp_id: tier}}}}``; `mpr_cma.evaluation.tiers` scores per tier with it.

testA holds crowded held-out scenes (5-6 objects), testB sparse ones (3-4 objects), the way
RefCOCO's testA/testB are two disjoint kinds of held-out images. Same seed, same bytes.
"""

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from mpr_cma.datasets.refcoco_format import DEFAULT_IMAGE_ROOT, write_refcoco
from mpr_cma.datasets.refvos_format import write_refvos_split
from mpr_cma.datasets.rle import encode_mask
from mpr_cma.datasets.synthetic_scene import (
    SHAPES,
    SceneObject,
    render,
    sample_image_scene,
    sample_video_scene,
)

IMAGE_KINDS = ("attribute", "relation", "between", "nearest", "size", "ordinal")
# Tiers of the benchmark (issue 13): what an expression asks the model to resolve.
TIERS = ("attribute", "spatial", "size", "ordinal", "motion")
TIER_OF_KIND = {"attribute": "attribute", "relation": "spatial", "between": "spatial",
                "nearest": "spatial", "size": "size", "ordinal": "ordinal", "motion": "motion"}
TIERS_FILE = "tiers.json"
RELATIONS = {"left_of": "left of", "right_of": "right of", "above": "above", "below": "below"}
SIZE_WORDS = ("bigger", "smaller", "biggest", "smallest")
SIDES = ("left", "right", "top", "bottom")
ORDINALS = ("first", "second", "third", "fourth")
NUMBERS = {2: "two", 3: "three"}
MOTION_TEXT = {"stops": ("that stops", "that stop"), "static": ("that stays still",
                                                               "that stay still")}
BETWEEN_WIDTH = 0.3  # max distance from the anchors' segment, as a fraction of its length
SIZE_RATIO = 1.25  # a size comparison is kept only if the sizes differ by this factor
REFCOCO_SPLITS = (("train", (3, 6)), ("val", (3, 6)), ("testA", (5, 6)), ("testB", (3, 4)))
VIDEO_SPLITS = ("train", "valid_u")

__all__ = [
    "Desc",
    "Ref",
    "TIERS",
    "TIERS_FILE",
    "TIER_OF_KIND",
    "SyntheticConfig",
    "generate_synthetic",
    "image_expressions",
    "ref_text",
    "resolve",
    "video_expressions",
]


@dataclass(frozen=True)
class Desc:
    """An attribute description: colour and/or shape (None = any)."""

    colour: str | None = None
    shape: str | None = None

    def matches(self, obj: SceneObject) -> bool:
        """Whether `obj` fits the description."""
        return (self.colour in (None, obj.colour)) and (self.shape in (None, obj.shape))

    def text(self, plural: bool = False) -> str:
        """"red circle", "squares", "blue shape" ..."""
        noun = (self.shape or "shape") + ("s" if plural else "")
        return f"{self.colour} {noun}" if self.colour else noun


@dataclass(frozen=True)
class Ref:
    """A structured referring expression.

    Attributes:
        kind: One of :data:`IMAGE_KINDS` or "motion".
        target: Description of the referred object(s).
        relation: relation: a key of :data:`RELATIONS`; size: one of :data:`SIZE_WORDS`;
            ordinal: one of :data:`SIDES`; motion: a motion label of synthetic_scene.MOTIONS.
        anchor: relation / nearest: the (unique) anchor; between: the pair (plural).
        index: ordinal: 1-based rank; motion: number of objects (0 = singular "the").
    """

    kind: str
    target: Desc
    relation: str = ""
    anchor: Desc | None = None
    index: int = 0


def ref_text(ref: Ref) -> str:
    """The sentence of a structured expression."""
    t = ref.target.text()
    if ref.kind == "attribute":
        return f"the {t}"
    if ref.kind == "relation":
        return f"the {t} {RELATIONS[ref.relation]} the {ref.anchor.text()}"
    if ref.kind == "between":
        return f"the {t} between the two {ref.anchor.text(plural=True)}"
    if ref.kind == "nearest":
        return f"the {t} nearest to the {ref.anchor.text()}"
    if ref.kind == "size":
        return f"the {ref.relation} {t}"
    if ref.kind == "ordinal":
        return f"the {ORDINALS[ref.index - 1]} {t} from the {ref.relation}"
    if ref.kind == "motion":
        plural = ref.index > 0
        head = f"the {NUMBERS[ref.index]} {ref.target.text(True)}" if plural else f"the {t}"
        verb = MOTION_TEXT.get(ref.relation)
        return f"{head} {verb[plural] if verb else 'moving ' + ref.relation}"
    raise ValueError(f"unknown expression kind {ref.kind!r}")


def _offset(obj: SceneObject, anchor: SceneObject, relation: str) -> float:
    """Signed distance by which `obj` is `relation` the anchor (> 0: it is)."""
    (x, y), (ax, ay) = obj.centre, anchor.centre
    return {"left_of": ax - x, "right_of": x - ax, "above": ay - y, "below": y - ay}[relation]


def _between(obj: SceneObject, a: SceneObject, b: SceneObject, margin: float) -> bool | None:
    p, pa, pb = (np.asarray(o.centre, dtype=float) for o in (obj, a, b))
    axis = pb - pa
    length = float(np.hypot(*axis))
    along = float(np.dot(p - pa, axis)) / length  # pixels from a towards b
    across = abs(float(axis[0] * (p - pa)[1] - axis[1] * (p - pa)[0])) / length
    width = BETWEEN_WIDTH * length
    if min(abs(along), abs(along - length), abs(across - width)) < margin:
        return None
    return 0 < along < length and across <= width


def _gaps_clear(values: list[float], margin: float) -> bool:
    values = sorted(values)
    return all(b - a >= margin for a, b in zip(values, values[1:], strict=False))


def resolve(objects: list[SceneObject], ref: Ref, margin: float = 0.0) -> frozenset | None:
    """The ids of the objects an expression denotes.

    Args:
        objects: The scene.
        ref: The structured expression.
        margin: Pixels: with margin > 0, any comparison decided by less than `margin` (or a
            size ratio under :data:`SIZE_RATIO`) makes the expression borderline.

    Returns:
        frozenset of object ids (empty when nothing fits or a presupposition fails, e.g. a
        non-unique anchor), or None when borderline.
    """
    cands = [o for o in objects if ref.target.matches(o)]
    if ref.kind in ("relation", "nearest"):
        anchors = [o for o in objects if ref.anchor.matches(o)]
        if len(anchors) != 1:
            return frozenset()
        anchor = anchors[0]
        cands = [o for o in cands if o.id != anchor.id]
        if ref.kind == "relation":
            offsets = [_offset(o, anchor, ref.relation) for o in cands]
            if any(abs(d) < margin for d in offsets):
                return None
            return frozenset(o.id for o, d in zip(cands, offsets, strict=True) if d > 0)
        dist = [float(np.hypot(o.centre[0] - anchor.centre[0], o.centre[1] - anchor.centre[1]))
                for o in cands]
        if not cands:
            return frozenset()
        if margin and len(cands) > 1 and np.diff(sorted(dist))[0] < margin:
            return None
        return frozenset({cands[int(np.argmin(dist))].id})
    if ref.kind == "between":
        pair = [o for o in objects if ref.anchor.matches(o)]
        if len(pair) != 2:
            return frozenset()
        cands = [o for o in cands if o.id not in {pair[0].id, pair[1].id}]
        inside = [_between(o, pair[0], pair[1], margin) for o in cands]
        if None in inside:
            return None
        return frozenset(o.id for o, ok in zip(cands, inside, strict=True) if ok)
    if ref.kind == "size":
        pairwise = ref.relation in ("bigger", "smaller")
        if (len(cands) != 2) if pairwise else (len(cands) < 3):
            return frozenset()
        ranked = sorted(cands, key=lambda o: o.size, reverse=ref.relation in ("bigger",
                                                                               "biggest"))
        first, second = ranked[0].size, ranked[1].size
        if margin and max(first, second) < SIZE_RATIO * min(first, second):
            return None
        return frozenset({ranked[0].id}) if first != second else frozenset()
    if ref.kind == "ordinal":
        axis, sign = {"left": (0, 1), "right": (0, -1), "top": (1, 1), "bottom": (1, -1)}[
            ref.relation]
        keys = [sign * o.centre[axis] for o in cands]
        if len(cands) < ref.index:
            return frozenset()
        if not _gaps_clear(keys, max(margin, 1e-9)):
            return None if margin else frozenset()
        return frozenset({sorted(cands, key=lambda o: sign * o.centre[axis])[ref.index - 1].id})
    if ref.kind == "motion":
        ids = frozenset(o.id for o in cands if o.motion == ref.relation)
        return frozenset() if ref.index and len(ids) != ref.index else ids
    if ref.kind == "attribute":
        return frozenset(o.id for o in cands)
    raise ValueError(f"unknown expression kind {ref.kind!r}")


def _descs(obj: SceneObject) -> list[Desc]:
    return [Desc(shape=obj.shape), Desc(colour=obj.colour), Desc(obj.colour, obj.shape)]


def _count(objects: list[SceneObject], desc: Desc) -> int:
    return sum(desc.matches(o) for o in objects)


def _candidate_refs(objects: list[SceneObject], obj: SceneObject) -> list[Ref]:
    """Every image expression worth trying for `obj` (most will not resolve uniquely)."""
    anchors = []
    for other in objects:
        unique = [d for d in _descs(other) if _count(objects, d) == 1]
        if other.id != obj.id and unique:
            anchors.append(unique[0])
    pairs = sorted({d for o in objects for d in _descs(o) if _count(objects, d) == 2},
                   key=lambda d: (d.colour or "", d.shape or ""))
    refs = []
    for desc in _descs(obj):
        n = _count(objects, desc)
        if n == 1:
            refs.append(Ref("attribute", desc))
            continue
        for anchor in anchors:
            refs += [Ref("relation", desc, rel, anchor) for rel in RELATIONS]
            refs.append(Ref("nearest", desc, anchor=anchor))
        refs += [Ref("between", desc, anchor=pair) for pair in pairs
                 if not pair.matches(obj)]
        if desc.shape:  # sizes are compared between shapes of one kind only
            refs += [Ref("size", desc, w) for w in (SIZE_WORDS[:2] if n == 2 else SIZE_WORDS[2:])]
        refs += [Ref("ordinal", desc, side, index=k)
                 for side in SIDES for k in range(1, min(n, len(ORDINALS)) + 1)]
    return refs


def image_expressions(objects: list[SceneObject], rng: np.random.Generator, margin: float,
                      max_per_object: int = 3,
                      allowed: tuple[str, ...] = IMAGE_KINDS) -> dict[int, list[Ref]]:
    """Expressions per object id, each denoting exactly that object (kinds varied).

    Up to `max_per_object` expressions per object, at most one per kind, structured kinds
    in random order before the attribute kind; only the `allowed` kinds are made.
    Objects with no expression are left out.
    """
    out = {}
    for obj in objects:
        by_kind: dict[str, list[Ref]] = {}
        for ref in _candidate_refs(objects, obj):
            if ref.kind in allowed and resolve(objects, ref, margin) == {obj.id}:
                by_kind.setdefault(ref.kind, []).append(ref)
        structured = [k for k in IMAGE_KINDS[1:] if k in by_kind]
        kinds = [structured[i] for i in rng.permutation(len(structured))]
        kinds += ["attribute"] if "attribute" in by_kind else []
        chosen = [by_kind[k][int(rng.integers(len(by_kind[k])))] for k in kinds]
        if chosen:
            out[obj.id] = chosen[:max_per_object]
    return out


def video_expressions(objects: list[SceneObject], rng: np.random.Generator,
                      max_per_object: int = 2) -> list[tuple[Ref, tuple[int, ...]]]:
    """Motion expressions of a video scene as (ref, referred ids), singular ones first.

    A singular expression prefers descriptions shared by several objects (the motion
    disambiguates); a multi-object one ("the two squares moving right") names every object
    of a description with one motion, when there are two or three of them.
    """
    out = []
    for obj in objects:
        refs = [Ref("motion", d, obj.motion) for d in _descs(obj)]
        refs = [r for r in refs if resolve(objects, r) == {obj.id}]
        refs.sort(key=lambda r: -_count(objects, r.target))  # ambiguous descriptions first
        out += [(r, (obj.id,)) for r in refs[:max_per_object]]
    groups = sorted({(d, o.motion) for o in objects for d in _descs(o)},
                    key=lambda g: (g[0].colour or "", g[0].shape or "", g[1]))
    for desc, motion in groups:
        ids = tuple(sorted(o.id for o in objects if desc.matches(o) and o.motion == motion))
        ref = Ref("motion", desc, motion, index=len(ids))
        if len(ids) in NUMBERS and resolve(objects, ref) == set(ids):
            out.append((ref, ids))
    keep = sorted(rng.permutation(len(out))[: max(1, len(objects) * max_per_object)])
    return [out[i] for i in keep]


@dataclass
class SyntheticConfig:
    """Size knobs of the synthetic data.

    Attributes:
        image_size: Side of the square images and video frames (default 64: the tiny
            configs feed SAM-2 64 px and the MLLM 56 px, so little is lost to resizing).
        images: Number of images per RefCOCO split (train, val, testA, testB).
        videos: Number of videos per MeViS split (train, valid_u).
        frames: Frames per video.
        margin: Pixels by which every spatial comparison of a kept expression must be
            decided (default: image_size / 16, 4 px at 64 px).
        image_kinds: The image expression kinds to make (default all; e.g. ("attribute",)
            for scenes asked only by colour / shape, scripts/probe_seg_prompt.py).
    """

    image_size: int = 64
    images: dict[str, int] = field(default_factory=lambda: {
        "train": 400, "val": 60, "testA": 40, "testB": 40})
    videos: dict[str, int] = field(default_factory=lambda: {"train": 60, "valid_u": 20})
    frames: int = 8
    margin: float | None = None
    image_kinds: tuple[str, ...] = IMAGE_KINDS

    def __post_init__(self) -> None:
        unknown = sorted(set(self.image_kinds) - set(IMAGE_KINDS))
        if unknown or not self.image_kinds:
            raise ValueError(f"image_kinds must be a non-empty subset of {IMAGE_KINDS}, got "
                             f"{tuple(self.image_kinds)!r}")


def generate_synthetic(out: str | Path, seed: int = 0,
                       config: SyntheticConfig | None = None) -> dict:
    """Write the synthetic RefCOCO and MeViS data under `out` (see the module docstring).

    Args:
        out: Data root to create (existing files of the same names are overwritten).
        seed: Random seed; the same seed and config give byte-identical files.
        config: Size knobs; default :class:`SyntheticConfig`.

    Returns:
        Summary: {"refcoco": {split: {"images", "refs", "sentences"}}, "mevis": {split:
        {"videos", "expressions"}}, "kinds": {kind: sentences}}.
    """
    cfg = config or SyntheticConfig()
    out = Path(out)
    margin = cfg.margin if cfg.margin is not None else cfg.image_size / 16
    scenes: dict = {"seed": seed, "image_size": cfg.image_size, "images": {}, "videos": {}}
    summary: dict = {"refcoco": {}, "mevis": {}, "kinds": Counter()}
    tiers: dict = {"refcoco": {}, "mevis": {}}
    _write_images(out, seed, cfg, margin, scenes, summary, tiers["refcoco"])
    _write_videos(out, seed, cfg, scenes, summary, tiers["mevis"])
    (out / TIERS_FILE).write_text(json.dumps(tiers, indent=1, sort_keys=True))
    (out / "scenes.json").write_text(json.dumps(scenes, indent=1, sort_keys=True))
    summary["kinds"] = dict(sorted(summary["kinds"].items()))
    return summary


def _background(rng: np.random.Generator) -> tuple[int, int, int]:
    grey = int(rng.integers(30, 90))  # dark grey: every palette colour stands out
    return (grey, grey, grey)


def _write_images(out: Path, seed: int, cfg: SyntheticConfig, margin: float, scenes: dict,
                  summary: dict, tiers: dict) -> None:
    image_dir = out / DEFAULT_IMAGE_ROOT
    image_dir.mkdir(parents=True, exist_ok=True)
    images, annotations, refs = [], [], []
    size = cfg.image_size
    for k, (split, n_objects) in enumerate(REFCOCO_SPLITS):
        rng = np.random.default_rng([seed, 0, k])  # one stream per split
        n_refs = n_sents = 0
        for _ in range(cfg.images.get(split, 0)):
            image_id = len(images) + 1
            objects = sample_image_scene(rng, size, n_objects, first_id=len(annotations) + 1)
            background = _background(rng)
            pixels, visible, _ = render(objects, (size, size), background)
            name = f"COCO_train2014_{image_id:012d}.jpg"
            Image.fromarray(pixels).save(image_dir / name)
            images.append({"id": image_id, "file_name": name, "height": size, "width": size})
            annotations += [{"id": o.id, "image_id": image_id, "iscrowd": 0,
                             "category_id": SHAPES.index(o.shape) + 1,
                             "segmentation": encode_mask(visible[o.id])} for o in objects]
            for ann_id, exps in image_expressions(objects, rng, margin,
                                                  allowed=cfg.image_kinds).items():
                tiers[str(len(refs))] = [TIER_OF_KIND[r.kind] for r in exps]
                refs.append({"ref_id": len(refs), "ann_id": ann_id, "split": split,
                             "sentences": [ref_text(r) for r in exps]})
                summary["kinds"].update(r.kind for r in exps)
                n_refs, n_sents = n_refs + 1, n_sents + len(exps)
            scenes["images"][str(image_id)] = {
                "split": split, "file_name": name, "background": list(background),
                "objects": [o.to_json() for o in objects]}
        summary["refcoco"][split] = {"images": cfg.images.get(split, 0), "refs": n_refs,
                                     "sentences": n_sents}
    categories = [{"id": i + 1, "name": s, "supercategory": "shape"} for i, s in enumerate(SHAPES)]
    write_refcoco(out, "refcoco", images, annotations, refs, categories=categories)


def _write_videos(out: Path, seed: int, cfg: SyntheticConfig, scenes: dict,
                  summary: dict, tiers: dict) -> None:
    size, n_frames = cfg.image_size, cfg.frames
    for k, split in enumerate(VIDEO_SPLITS):
        rng = np.random.default_rng([seed, 1, k])
        videos, split_scenes, next_id = {}, {}, 0
        for v in range(cfg.videos.get(split, 0)):
            objects = sample_video_scene(rng, size, n_frames, first_id=next_id)
            next_id += len(objects)
            background = _background(rng)
            exps = video_expressions(objects, rng)
            if not exps:
                continue
            frames = [render(objects, (size, size), background, t) for t in range(n_frames)]
            name = f"video_{v:05d}"
            index = {o.id: i for i, o in enumerate(objects)}
            videos[name] = {
                "images": np.stack([f[0] for f in frames]),
                "masks": {str(o.id): [f[1][o.id] if f[1][o.id].any() else None for f in frames]
                          for o in objects},
                "expressions": {str(e): {"exp": ref_text(ref), "anno_id": [str(i) for i in ids],
                                         "obj_id": [index[i] for i in ids]}
                                for e, (ref, ids) in enumerate(exps)}}
            summary["kinds"].update("motion" if ref.index == 0 else "motion_multi"
                                    for ref, _ in exps)
            split_scenes[name] = {"background": list(background),
                                  "objects": [o.to_json() for o in objects]}
        tiers[split] = {name: {e: TIER_OF_KIND["motion"] for e in video["expressions"]}
                        for name, video in videos.items()}
        write_refvos_split(out / "mevis" / split, videos)
        scenes["videos"][split] = split_scenes
        summary["mevis"][split] = {"videos": len(videos),
                                   "expressions": sum(len(v["expressions"])
                                                      for v in videos.values())}
