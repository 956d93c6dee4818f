"""Synthetic data generator: determinism, the real readers, exact masks, and every expression
re-derived by an independent checker (a text parser + geometry on scenes.json)."""

import hashlib
import importlib.util
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from mpr_cma.datasets.refcoco import RefCOCODataset
from mpr_cma.datasets.refcoco_format import load_refcoco, ref_mask
from mpr_cma.datasets.refvos import RefVOSDataset
from mpr_cma.datasets.refvos_format import RefVOSSplit
from mpr_cma.datasets.synthetic import SyntheticConfig, generate_synthetic
from mpr_cma.datasets.synthetic_scene import SceneObject, render
from tests.datasets._train_data import TINY

SMALL = SyntheticConfig(images={"train": 24, "val": 6, "testA": 6, "testB": 6},
                        videos={"train": 6, "valid_u": 4}, frames=6)
SPLITS = ("train", "val", "testA", "testB")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    summary = generate_synthetic(root, seed=3, config=SMALL)
    return root, summary, json.loads((root / "scenes.json").read_text())


# ---------------------------------------------------------------- independent checker
COLOUR = r"(?:(red|green|blue|yellow|purple) )?"
NOUN = r"(circle|square|triangle|diamond|shape)"
D = COLOUR + NOUN
DS = COLOUR + NOUN + "s"
GRAMMAR = [
    ("attribute", rf"the {D}"),
    ("relation", rf"the {D} (left of|right of|above|below) the {D}"),
    ("between", rf"the {D} between the two {DS}"),
    ("nearest", rf"the {D} nearest to the {D}"),
    ("size", rf"the (bigger|smaller|biggest|smallest) {D}"),
    ("ordinal", rf"the (first|second|third|fourth) {D} from the (left|right|top|bottom)"),
    ("motion", rf"the {D} (moving left|moving right|moving up|moving down|that stops"
               r"|that stays still)"),
    ("motion_n", rf"the (two|three) {DS} (moving left|moving right|moving up|moving down"
                 r"|that stop|that stay still)"),
]


def parse(text):
    for kind, pattern in GRAMMAR:
        m = re.fullmatch(pattern, text)
        if m:
            return kind, m.groups()
    raise AssertionError(f"sentence outside the grammar: {text!r}")


def fits(obj, colour, noun):
    return colour in (None, obj["colour"]) and noun in ("shape", obj["shape"])


def derived_motion(track):
    steps = [(b[0] - a[0], b[1] - a[1]) for a, b in zip(track, track[1:], strict=False)]
    moving = [s != (0, 0) for s in steps]
    if not any(moving):
        return "that stays still"
    if all(moving) and len(set(steps)) == 1:
        dx, dy = steps[0]
        assert dx == 0 or dy == 0
        return "moving " + ("left" if dx < 0 else "right" if dx > 0 else "up" if dy < 0
                            else "down")
    k = moving.index(False)
    assert all(moving[:k]) and not any(moving[k:]), f"irregular track {track}"
    return "that stops"


def denote(objects, text):
    """Ids of the objects `text` names, from the scene description alone."""
    kind, g = parse(text)
    xy = {o["id"]: o["track"][0] for o in objects}

    def match(colour, noun, exclude=()):
        return [o for o in objects if fits(o, colour, noun) and o["id"] not in exclude]

    def one(colour, noun):
        found = match(colour, noun)
        assert len(found) == 1, f"{text!r}: anchor not unique"
        return found[0]

    if kind == "attribute":
        return {o["id"] for o in match(*g)}
    if kind in ("relation", "nearest"):
        anchor = one(*g[-2:])
        cands = match(g[0], g[1], exclude=(anchor["id"],))
        ax, ay = anchor["track"][0]
        if kind == "nearest":
            dist = sorted((math.dist(xy[o["id"]], (ax, ay)), o["id"]) for o in cands)
            assert len(dist) == 1 or dist[0][0] < dist[1][0], f"{text!r}: tie"
            return {dist[0][1]}
        side = {"left of": lambda x, y: x < ax, "right of": lambda x, y: x > ax,
                "above": lambda x, y: y < ay, "below": lambda x, y: y > ay}[g[2]]
        return {o["id"] for o in cands if side(*xy[o["id"]])}
    if kind == "between":
        pair = match(g[2], g[3])
        assert len(pair) == 2, f"{text!r}: not two anchors"
        a, b = (np.array(p["track"][0], float) for p in pair)
        length = np.linalg.norm(b - a)
        out = set()
        for o in match(g[0], g[1], exclude=[p["id"] for p in pair]):
            p = np.array(xy[o["id"]], float)
            t = (p - a) @ (b - a) / length**2
            (ux, uy), (vx, vy) = b - a, p - a
            off = abs(ux * vy - uy * vx) / length
            if 0 < t < 1 and off <= 0.3 * length:
                out.add(o["id"])
        return out
    if kind == "size":
        cands = match(g[1], g[2])
        assert len(cands) == 2 if g[0] in ("bigger", "smaller") else len(cands) >= 3
        sizes = sorted((o["size"] for o in cands), reverse=g[0] in ("bigger", "biggest"))
        assert sizes[0] != sizes[1]
        return {o["id"] for o in cands if o["size"] == sizes[0]}
    if kind == "ordinal":
        axis, sign = {"left": (0, 1), "right": (0, -1), "top": (1, 1), "bottom": (1, -1)}[g[3]]
        ranked = sorted(match(g[1], g[2]), key=lambda o: sign * o["track"][0][axis])
        keys = [o["track"][0][axis] for o in ranked]
        assert len(set(keys)) == len(keys), f"{text!r}: tied positions"
        return {ranked[("first", "second", "third", "fourth").index(g[0])]["id"]}
    singular = {"that stop": "that stops", "that stay still": "that stays still"}
    motion = singular.get(g[-1], g[-1])
    out = {o["id"] for o in match(g[-3], g[-2]) if derived_motion(o["track"]) == motion}
    if kind == "motion_n":
        assert len(out) == {"two": 2, "three": 3}[g[0]], f"{text!r}: wrong count"
    return out


def scene_objects(objects):
    return [SceneObject(o["id"], o["shape"], o["colour"], o["size"],
                        tuple(tuple(p) for p in o["track"]), o["motion"]) for o in objects]


# ---------------------------------------------------------------------------- tests
def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(data, tmp_path):
    root, _, _ = data
    again = generate_synthetic(tmp_path / "a", seed=3, config=SMALL)
    assert tree_hashes(root) == tree_hashes(tmp_path / "a")
    assert again == data[1]
    generate_synthetic(tmp_path / "b", seed=4, config=SMALL)
    other = tree_hashes(tmp_path / "b")
    assert other.keys() == tree_hashes(root).keys()
    assert other["refcoco/refs(unc).p"] != tree_hashes(root)["refcoco/refs(unc).p"]


@pytest.mark.parametrize("split", SPLITS)
def test_refcoco_split_loads_and_resolves(data, split):
    root, summary, scenes = data
    records = load_refcoco(root, "refcoco", split=split)
    assert len(records) == summary["refcoco"][split]["refs"] > 0
    assert sum(len(r.sentences) for r in records) == summary["refcoco"][split]["sentences"]
    rendered = {}
    for rec in records:
        scene = scenes["images"][str(rec.image_id)]
        assert scene["split"] == split and rec.image_path.is_file()
        n = len(scene["objects"])
        assert {"testA": 5 <= n <= 6, "testB": 3 <= n <= 4}.get(split, 3 <= n <= 6)
        for sent in rec.sentences:
            assert denote(scene["objects"], sent) == {rec.ann_id}, sent
            kind, g = parse(sent)
            if kind != "attribute":  # distractors: the target's words alone are ambiguous
                colour, noun = (g[1], g[2]) if kind in ("size", "ordinal") else g[:2]
                assert sum(fits(o, colour, noun) for o in scene["objects"]) >= 2, sent
        if rec.image_id not in rendered:
            objects = scene_objects(scene["objects"])
            rendered[rec.image_id] = render(objects, (rec.height, rec.width),
                                            tuple(scene["background"]))
        _, visible, full = rendered[rec.image_id]
        mask = ref_mask(rec)
        np.testing.assert_array_equal(mask, visible[rec.ann_id])
        assert mask.sum() >= 0.7 * full[rec.ann_id].sum()  # referred objects stay visible
        assert rec.category_id in (1, 2, 3, 4)


def test_expression_kinds_all_present(data):
    kinds = data[1]["kinds"]
    for kind in ("attribute", "relation", "between", "nearest", "size", "ordinal", "motion",
                 "motion_multi"):
        assert kinds.get(kind, 0) > 0, kind


def test_image_kinds_keeps_only_the_named_kinds(data, tmp_path):
    config = SyntheticConfig(images=SMALL.images, videos=SMALL.videos, frames=SMALL.frames,
                             image_kinds=("attribute",))
    summary = generate_synthetic(tmp_path, seed=3, config=config)
    image_kinds = {k for k in summary["kinds"] if not k.startswith("motion")}
    assert image_kinds == {"attribute"}
    # more attribute expressions than the default mix, where they come last of three
    assert summary["kinds"]["attribute"] > data[1]["kinds"]["attribute"]
    for rec in load_refcoco(tmp_path, "refcoco", split="train"):
        assert all(parse(sent)[0] == "attribute" for sent in rec.sentences)
    with pytest.raises(ValueError, match="image_kinds must be"):
        SyntheticConfig(image_kinds=("colour",))


@pytest.mark.parametrize("split", ["train", "valid_u"])
def test_mevis_split_loads_and_resolves(data, split):
    root, summary, scenes = data
    vos = RefVOSSplit(root / "mevis" / split)
    assert vos.has_masks and len(vos) == summary["mevis"][split]["expressions"] > 0
    assert len(vos.videos) == summary["mevis"][split]["videos"]
    for video in vos.videos:
        scene = scenes["videos"][split][video]
        frames = vos.frames(video)
        assert len(frames) == SMALL.frames
        objects = scene_objects(scene["objects"])
        hw = (scenes["image_size"],) * 2
        visible = [render(objects, hw, tuple(scene["background"]), t)[1]
                   for t in range(len(frames))]
        for exp in vos.expressions(video).values():
            ids = denote(scene["objects"], exp.exp)
            assert {str(i) for i in ids} == set(exp.anno_ids), exp.exp
            gt = vos.expression_masks(video, exp.exp_id)
            want = [np.logical_or.reduce([v[int(a)] for a in exp.anno_ids]) for v in visible]
            np.testing.assert_array_equal(gt, np.stack(want))


def test_training_datasets_read_it(data):
    root = data[0]
    ds = RefCOCODataset(root, dataset="refcoco", split="train", max_objects=5, max_tiles=2,
                        seed=0, **TINY)
    sample = ds[0]
    assert sample["masks"].shape[-2:] == (SMALL.image_size, SMALL.image_size)
    assert sample["masks"].flatten(1).any(1).all()
    vds = RefVOSDataset(root / "mevis" / "train", name="mevis", num_frames=2, seed=0, **TINY)
    sample = vds[0]
    assert sample["masks"].shape[1:] == (2, SMALL.image_size, SMALL.image_size)


def test_checker_catches_a_wrong_id(data):
    """The checker is not vacuous: a sentence names one object, not its neighbour."""
    root, _, scenes = data
    rec = load_refcoco(root, "refcoco", split="train")[0]
    objects = scenes["images"][str(rec.image_id)]["objects"]
    others = {o["id"] for o in objects} - {rec.ann_id}
    assert all(not (denote(objects, s) & others) for s in rec.sentences)
    with pytest.raises(AssertionError):
        parse("the circle to the north of the square")


def test_script_writes_refuses_and_overwrites(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "make_synthetic_data", Path(__file__).parents[2] / "scripts" / "make_synthetic_data.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    args = ["--out", str(tmp_path), "--seed", "1", "--train-images", "3", "--val-images", "1",
            "--test-images", "1", "--train-videos", "1", "--val-videos", "1", "--frames", "4"]
    assert script.main(args) == 0
    assert "MB to" in capsys.readouterr().out
    assert len(load_refcoco(tmp_path, split="testB")) > 0
    with pytest.raises(SystemExit, match="--overwrite"):
        script.main(args)
    with pytest.raises(SystemExit, match="--frames"):
        script.main([*args, "--overwrite", "--frames", "2"])
    assert (tmp_path / "scenes.json").is_file()  # a bad option deletes nothing
    assert script.main([*args, "--overwrite", "--train-images", "2"]) == 0
