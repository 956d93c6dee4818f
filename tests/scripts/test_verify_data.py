"""scripts/verify_data.py: a clean root passes; each injected problem is found and counted."""

import importlib.util
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mpr_cma.datasets.refcoco_format import instances_path, refs_path
from mpr_cma.datasets.refvos_format import write_refvos_split
from tests.datasets import _ref_davis as davis
from tests.datasets.test_layouts import to_sa2va_refcoco
from tests.datasets.test_refcoco_format import IMAGE_DIR, build_refcoco_root, image_name

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "verify_data.py"


@pytest.fixture(scope="module")
def verify_data():
    spec = importlib.util.spec_from_file_location("verify_data", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def counts(report) -> dict[str, int]:
    return {kind: len(messages) for kind, messages in report.problems.items() if messages}


def edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def edit_refs(path: Path, edit) -> None:
    refs = pickle.loads(path.read_bytes())
    edit(refs)
    path.write_bytes(pickle.dumps(refs))


def test_clean_root_passes(tmp_path, verify_data, capsys):
    build_refcoco_root(tmp_path, "refcoco")
    build_refcoco_root(tmp_path, "refcocog")
    report = verify_data.verify(tmp_path, check_images=True)
    assert report.ok, report.format()
    assert [n.split(":")[0] for n in report.notes] == ["refcoco", "refcocog"]
    assert verify_data.main([str(tmp_path), "--check-images"]) == 0
    assert "OK: no problems found" in capsys.readouterr().out


def test_injected_problems_are_counted(tmp_path, verify_data, capsys):
    build_refcoco_root(tmp_path, "refcoco")
    build_refcoco_root(tmp_path, "refcoco+")  # shares the image root with refcoco
    (tmp_path / IMAGE_DIR / image_name(9)).unlink()  # used by refs 2 and 3

    def corrupt_rle(data):
        ann = next(a for a in data["annotations"] if a["id"] == 201)
        ann["segmentation"]["counts"] = "0"  # runs cover 0 of 80 pixels

    edit_json(instances_path(tmp_path, "refcoco"), corrupt_rle)

    def dangle(refs):
        refs[0]["ann_id"] = 999
        refs[4]["ann_id"] = 998

    edit_refs(refs_path(tmp_path, "refcoco+"), dangle)
    report = verify_data.verify(tmp_path)
    assert counts(report) == {"missing_image": 1, "bad_segmentation": 1, "dangling_ann_id": 2}
    assert "annotation 201" in report.problems["bad_segmentation"][0]
    assert verify_data.main([str(tmp_path), "--max-examples", "1"]) == 1
    out = capsys.readouterr().out
    assert "4 problem(s) in 3 kind(s)" in out and "dangling_ann_id: 2" in out
    assert "... and 1 more" in out


def test_image_checks(tmp_path, verify_data):
    build_refcoco_root(tmp_path)
    (tmp_path / IMAGE_DIR / image_name(9)).write_bytes(b"not a jpeg")
    edit_json(instances_path(tmp_path, "refcoco"),
              lambda d: d["images"][0].update(height=13))  # the file is 12 high
    assert counts(verify_data.verify(tmp_path)) == {}  # presence only without --check-images
    assert counts(verify_data.verify(tmp_path, check_images=True)) == {
        "unreadable_image": 1, "image_size_mismatch": 1,
    }


def test_structural_problems(tmp_path, verify_data):
    assert counts(verify_data.verify(tmp_path)) == {"no_datasets": 1}
    build_refcoco_root(tmp_path)
    refs_path(tmp_path, "refcoco").rename(tmp_path / "refcoco" / "refs(google).p")
    def edit(refs):
        refs[1]["image_id"] = 5  # dangling
        refs[2]["image_id"] = 581857  # exists, but annotation 201 is on image 9

    edit_refs(tmp_path / "refcoco" / "refs(google).p", edit)
    edit_json(instances_path(tmp_path, "refcoco"),
              lambda d: d["annotations"][0].update(image_id=77))
    report = verify_data.verify(tmp_path, only=["refcoco", "refcocog"])
    assert counts(report) == {"missing_file": 2, "dangling_image_id": 2, "ref_image_mismatch": 1}
    assert any("refs(unc).p" in m for m in report.problems["missing_file"])
    instances_path(tmp_path, "refcoco").write_text("{not json")
    assert counts(verify_data.verify(tmp_path)) == {"missing_file": 1, "unreadable_file": 1}


def test_command_line_exit_status(tmp_path):
    build_refcoco_root(tmp_path)
    run = [sys.executable, str(SCRIPT), str(tmp_path)]
    assert subprocess.run(run, capture_output=True).returncode == 0
    (tmp_path / IMAGE_DIR / image_name(9)).unlink()
    result = subprocess.run(run, capture_output=True, text=True)
    assert result.returncode == 1 and "missing_image: 1" in result.stdout


# ------------------------------------------------------------------ referring video


def box_masks(t, h=6, w=8):
    masks = np.zeros((t, h, w), bool)
    masks[:, 1:4, 2:5] = True
    return masks


def build_refvos_root(root: Path) -> None:
    videos = {
        "cat": {"masks": {"0": box_masks(3), "1": [None, box_masks(1)[0], None]},
                "expressions": {"0": {"exp": "the cat", "anno_id": ["0"]},
                                "1": {"exp": "both", "anno_id": ["0", "1"]}}},
        "dog": {"masks": {"2": box_masks(2)},
                "expressions": {"0": {"exp": "a dog", "anno_id": ["2"]}}},
    }
    write_refvos_split(root / "mevis" / "train", videos)
    write_refvos_split(root / "mevis" / "valid", videos, with_masks=False)
    # Ref-DAVIS17 as released: no anno_id in the meta (Sa2VA's numbering: cat/0 -> "0",
    # cat/1 -> "1", dog/0 -> "2", the keys of the pickle)
    write_refvos_split(root / "davis17" / "valid", videos, mask_format="pkl",
                       write_anno_ids=False)


def test_refvos_clean_and_injected(tmp_path, verify_data):
    build_refvos_root(tmp_path)
    report = verify_data.verify(tmp_path, check_images=True)
    assert report.ok, report.format()
    assert len(report.notes) == 3
    train = tmp_path / "mevis" / "train"
    (train / "JPEGImages" / "dog" / "00001.jpg").unlink()
    edit_json(train / "meta_expressions.json",
              lambda d: d["videos"]["dog"]["expressions"]["0"].update(anno_id=["2", "9"]))

    def break_masks(d):
        d["0"][1]["counts"] = "0"  # bad RLE
        d["1"] = d["1"][:2]  # 2 entries for 3 frames
        d["2"][0]["size"] = [7, 8]  # runs cover 48 px, a 7 x 8 mask needs 56: bad RLE
        d["2"][1] = {"size": [3, 16], "counts": d["2"][1]["counts"]}  # 48 px, wrong shape

    edit_json(train / "mask_dict.json", break_masks)
    report = verify_data.verify(tmp_path, only=["mevis"])
    assert counts(report) == {"missing_image": 1, "dangling_anno_id": 1, "bad_rle": 2,
                              "frame_count_mismatch": 1, "mask_size_mismatch": 1}
    (tmp_path / "mevis" / "valid" / "meta_expressions.json").unlink()
    assert verify_data.verify(tmp_path, only=["mevis"]).count("missing_file") == 1


def test_refvos_notes_say_the_anno_id_rule(tmp_path, verify_data):
    build_refvos_root(tmp_path)
    notes = verify_data.verify(tmp_path).notes
    davis17 = next(n for n in notes if "davis17" in n)
    mevis = next(n for n in notes if "mevis/train" in n)
    assert "anno_id rule 'sa2va'" in davis17 and "anno_id rule 'file'" in mevis


# ------------------------------------------------------------------ Sa2VA's folders


def test_sa2va_folders_pass(tmp_path, verify_data, capsys):
    build_refcoco_root(tmp_path, "refcoco")
    to_sa2va_refcoco(tmp_path)
    davis.write_ref_davis(tmp_path, "sa2va")
    report = verify_data.verify(tmp_path, check_images=True)
    assert report.ok, report.format()
    refcoco, split = report.notes[0], report.notes[1]
    assert "sa2va layout" in refcoco and "glamm_data/images/coco2014/train2014" in refcoco
    assert "video_datas/davis17/valid: 4 videos, 29 expressions, anno_id rule 'sa2va'" in split
    assert "meta_expressions/valid/meta_expressions.json" in split
    # Sa2VA's Ref-YTVOS training loader numbers videos in file order (not sorted here):
    assert any("not in name order" in n for n in report.notes)
    assert verify_data.main([str(tmp_path), "--data-layout", "sa2va"]) == 0
    assert verify_data.verify(tmp_path, layout="mpr_cma").count("no_datasets") == 1


def test_numbering_that_does_not_fit_the_pickle(tmp_path, verify_data):
    """A mask_dict keyed in natural order (the old rule) under Sa2VA's numbering: the
    expressions of one object get different masks."""
    files = davis.write_ref_davis(tmp_path, "mpr_cma")
    videos = json.loads(files["meta"].read_text())["videos"]
    visa = davis.visa_mask_dict(videos)
    by_key = {key: visa[str(i)] for key, i in davis.visa_numbering(videos).items()}
    natural = {str(i): by_key[key] for key, i in davis.natural_numbering(videos).items()}
    files["mask_dict"].write_bytes(pickle.dumps(natural))
    report = verify_data.verify(tmp_path, only=["davis17"])
    assert set(counts(report)) == {"anno_id_object_mismatch"}
    # One problem per expression whose mask (the object of the expression that natural
    # order gave its id) differs from that of the first expression of its object.
    sa2va = davis.visa_numbering(videos)
    holder = {i: key for key, i in davis.natural_numbering(videos).items()}
    want = 0
    for video, (_, objects, _) in davis.VIDEOS.items():
        first: dict[int, int] = {}
        for exp_id in sorted(objects):
            shown = davis.VIDEOS[video][1][holder[sa2va[video, exp_id]][1]]
            want += first.setdefault(objects[exp_id], shown) != shown
    assert want > 10 and counts(report)["anno_id_object_mismatch"] == want
    assert "does not fit this mask_dict" in report.problems["anno_id_object_mismatch"][0]
    del visa[str(davis.NUM_EXPRESSIONS - 1)]  # the last expression: gold-fish/9
    files["mask_dict"].write_bytes(pickle.dumps(visa))
    report = verify_data.verify(tmp_path, only=["davis17"])
    assert counts(report) == {"dangling_anno_id": 1}
    assert report.problems["dangling_anno_id"][0] == (
        "valid/gold-fish/9 -> anno_id 28 (assigned by the 'sa2va' rule)")


# ------------------------------------------------------------------ corrupt files


@pytest.mark.parametrize("name", ["instances.json", "refs(unc).p", "mask_dict.json",
                                  "mask_dict.pkl", "meta_expressions.json"])
def test_corrupt_files_are_one_line(tmp_path, verify_data, name):
    build_refcoco_root(tmp_path, "refcoco")
    build_refvos_root(tmp_path)
    path = {"instances.json": instances_path(tmp_path, "refcoco"),
            "refs(unc).p": refs_path(tmp_path, "refcoco"),
            "mask_dict.json": tmp_path / "mevis" / "train" / "mask_dict.json",
            "mask_dict.pkl": tmp_path / "davis17" / "valid" / "mask_dict.pkl",
            "meta_expressions.json": tmp_path / "mevis" / "valid" / "meta_expressions.json",
            }[name]
    path.write_bytes(path.read_bytes()[:30])
    report = verify_data.verify(tmp_path)
    assert counts(report) == {"unreadable_file": 1}
    message = report.problems["unreadable_file"][0]
    assert message.startswith(f"{path}: corrupt ") and "\n" not in message


def test_corrupt_file_exit_status_without_traceback(tmp_path):
    build_refvos_root(tmp_path)
    path = tmp_path / "davis17" / "valid" / "mask_dict.pkl"
    path.write_bytes(path.read_bytes()[:30])
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True,
                            text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"unreadable_file: 1\n    - {path}: corrupt mask_dict pickle" in result.stdout
