"""RefVOSSplit's anno_id rules and Sa2VA's folders, on a Ref-DAVIS17 split keyed the VISA way.

Expected ids and masks come from tests/datasets/_ref_davis.py (an independent
re-implementation of VISA's numbering and writer), never from the reader under test.
"""

import json
import logging

import numpy as np
import pytest

from mpr_cma.datasets import RefVOSSplit, sa2va_anno_ids, write_refvos_split
from tests.datasets import _ref_davis as davis


@pytest.fixture(params=["sa2va", "mpr_cma"])
def split_files(request, tmp_path):
    return davis.write_ref_davis(tmp_path, request.param)


def test_sa2va_numbering_is_visas(split_files):
    videos = json.loads(split_files["meta"].read_text())["videos"]
    want = {key: str(i) for key, i in davis.visa_numbering(videos).items()}
    assert sa2va_anno_ids(videos) == want
    # The fixture tells the rules apart: natural order numbers every expression id but
    # "0" and "1" of gold-fish (12 ids: 10) and dogs-jump (11 ids: 9) otherwise.
    natural = davis.natural_numbering(videos)
    assert sum(str(natural[k]) != want[k] for k in want) == 10 + 9


def test_split_gives_every_expression_its_object(split_files):
    split = RefVOSSplit(split_files["split"])  # meta found in either layout
    assert split.meta_file == split_files["meta"]
    assert split.mask_file == split_files["mask_dict"]
    assert split.anno_id_rule == "sa2va"  # no anno_id in the file: assigned
    assert "anno_id rule 'sa2va'" in split.describe_anno_ids()
    assert len(split) == davis.NUM_EXPRESSIONS
    for video, (_, objects, _) in davis.VIDEOS.items():
        assert list(split.expressions(video)) == sorted(objects)  # Sa2VA's order
        for exp_id in objects:
            np.testing.assert_array_equal(split.expression_masks(video, exp_id),
                                          davis.truth_mask(video, exp_id), err_msg=exp_id)


def test_file_anno_ids_are_ignored_under_sa2va(split_files, caplog):
    meta = json.loads(split_files["meta"].read_text())
    for video in meta["videos"].values():  # anno_ids numbered per video, in natural order
        for k, entry in enumerate(video["expressions"].values()):
            entry["anno_id"] = [k]
    split_files["meta"].write_text(json.dumps(meta))
    assert RefVOSSplit(split_files["split"]).anno_id_rule == "file"  # auto: the file's
    with caplog.at_level(logging.WARNING, logger="mpr_cma.datasets.refvos_format"):
        split = RefVOSSplit(split_files["split"], anno_id_rule="sa2va")
    assert split.anno_id_rule == "sa2va"
    # Only bike-packing, first by name, keeps its ids (0-3 both ways); the other 25 change.
    assert split.overwritten_anno_ids == davis.NUM_EXPRESSIONS - 4
    assert "replaced the file's anno_id of 25 expressions" in caplog.text
    np.testing.assert_array_equal(split.expression_masks("gold-fish", "2"),
                                  davis.truth_mask("gold-fish", "2"))


def test_mixed_and_missing_anno_ids_are_errors(tmp_path):
    masks = {"0": np.ones((1, 4, 4), bool), "1": np.ones((1, 4, 4), bool)}
    videos = {"v": {"masks": masks, "expressions": {"0": {"exp": "a", "anno_id": ["1"]},
                                                    "1": {"exp": "b", "anno_id": ["0"]}}}}
    root = write_refvos_split(tmp_path / "s", videos)
    meta = json.loads((root / "meta_expressions.json").read_text())
    del meta["videos"]["v"]["expressions"]["1"]["anno_id"]
    (root / "meta_expressions.json").write_text(json.dumps(meta))
    for rule in ("auto", "file"):
        with pytest.raises(ValueError, match=r"meta_expressions.json: 1 of 2 expressions have "
                                             r"no 'anno_id' \(e.g. v/1\)"):
            RefVOSSplit(root, anno_id_rule=rule)
    split = RefVOSSplit(root, anno_id_rule="sa2va")
    assert [e.anno_ids for e in split.iter_expressions()] == [("0",), ("1",)]
    with pytest.raises(ValueError, match="anno_id_rule must be one of"):
        RefVOSSplit(root, anno_id_rule="natural")


def test_file_rule_keeps_mevis_anno_ids(tmp_path):
    masks = {"7": np.ones((1, 4, 4), bool)}
    exps = {str(k): {"exp": f"e{k}", "anno_id": ["7"]} for k in range(12)}
    root = write_refvos_split(tmp_path / "s", {"v": {"masks": masks, "expressions": exps}})
    split = RefVOSSplit(root)
    assert split.anno_id_rule == "file"
    assert {e.anno_ids for e in split.iter_expressions()} == {("7",)}
    assert [e.exp_id for e in split.iter_expressions()][:4] == ["0", "1", "10", "11"]


def test_missing_meta_names_both_places(tmp_path):
    (tmp_path / "valid").mkdir()
    with pytest.raises(FileNotFoundError, match=r"valid/meta_expressions.json \(nor .*"
                                                r"meta_expressions/valid/meta_expressions"):
        RefVOSSplit(tmp_path / "valid")


def test_mask_dict_one_folder_up_only_when_asked(tmp_path):
    files = davis.write_ref_davis(tmp_path, "sa2va")
    moved = files["split"].parent / "mask_dict.pkl"  # Sa2VA's rvos/mask_dict.pkl place
    files["mask_dict"].rename(moved)
    assert not RefVOSSplit(files["split"]).has_masks
    assert RefVOSSplit(files["split"], mask_in_parent=True).mask_file == moved
