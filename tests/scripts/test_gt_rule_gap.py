"""scripts/gt_rule_gap.py: the size of Sa2VA's ground-truth rule on hand-derived overlaps."""

import importlib.util
from pathlib import Path

import pytest

from tests.datasets import _overlap_refcoco as ov
from tests.datasets.test_layouts import to_sa2va_refcoco

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gt_rule_gap.py"


@pytest.fixture(scope="module")
def gap():
    spec = importlib.util.spec_from_file_location("gt_rule_gap", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("layout", ["mpr_cma", "sa2va"])
def test_measures_the_fixture(tmp_path, gap, capsys, layout):
    root = ov.write_overlap_root(tmp_path)
    if layout == "sa2va":
        to_sa2va_refcoco(root)
    out = gap.measure(root, "refcoco", "val")
    assert out == pytest.approx({"refs": 4, "sentences": 4, "multi_polygon": 3, "changed": 2,
                                 "cIoU": ov.EXPECTED["cIoU"], "gIoU": ov.EXPECTED["gIoU"]})
    assert gap.main([str(root), "--split", "val"]) == 0
    assert "cIoU 0.8182  gIoU 0.8571" in capsys.readouterr().out


def test_corrupt_file_is_one_line(tmp_path, gap, capsys):
    root = ov.write_overlap_root(tmp_path)
    path = root / "refcoco" / "refs(unc).p"
    path.write_bytes(path.read_bytes()[:40])
    assert gap.main([str(root)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and "corrupt refs pickle" in err
