"""scripts/run_demo.py (`make demo`): the quick run writes every report file; the check
fails a run whose training did not beat the untrained model."""

import json
import subprocess
import sys

import pytest
from PIL import Image

from tests.scripts._drivers import ROOT, load_script, make_quick_data

REPORT_FILES = ("results.json", "summary.md", "loss_curves.png", "fig4_overlays.png",
                "fig4_video.png", "fig5_attention.png")


def rows(trained, untrained=(0.0, 0.0), forced=(0.02, 0.01), every=(0.15, 0.25)):
    def row(ciou, jf):
        return {"cIoU": ciou, "J&F": jf}
    return {"trained": row(*trained), "untrained": row(*untrained),
            "untrained_seg_forced": row(*forced), "every_object": row(*every)}


def tiers(attribute):
    """tier_scores output with the model's attribute-tier cIoU (other tiers omitted)."""
    return {"refcoco_val": {"model": {"attribute": {"cIoU": attribute}}}}


def losses(trained, untrained):
    def terms(total, mask, dice):
        return {"loss": total, "loss_mask": mask, "loss_dice": dice}
    return {"trained": terms(*trained), "untrained": terms(*untrained)}


MEASURED = losses((6.16, 0.17, 1.63), (9.08, 0.35, 1.89))   # a quick run, seed 0


def test_improvement_check_uses_the_better_untrained_score():
    check = load_script("run_demo").improvement_check
    good = tiers(0.7)
    assert check(rows((0.30, 0.40)), 0.05, quick=False, losses=MEASURED, tiers=good)["passed"]
    failed = check(rows((0.30, 0.05), every=(0.0, 0.0)), 0.05, quick=False, losses=MEASURED,
                   tiers=good)
    assert not failed["passed"] and failed["verdict"].startswith("FAILED")
    assert failed["bar"] == pytest.approx({"cIoU": 0.07, "J&F": 0.06})
    assert not check(rows((0.06, 0.40), every=(0.0, 0.0)), 0.05, quick=False,
                     losses=MEASURED, tiers=good)["passed"]


def test_full_check_needs_referring():
    """Above the untrained model but not the every-object yardstick + 0.10, or the
    attribute tier below 0.6: the demo fails."""
    check = load_script("run_demo").improvement_check
    below_yardstick = check(rows((0.20, 0.40)), 0.05, quick=False, losses=MEASURED,
                            tiers=tiers(0.7))
    assert not below_yardstick["passed"] and "every object + 0.1" in below_yardstick["verdict"]
    assert below_yardstick["refer_bar"] == pytest.approx({"cIoU": 0.25, "J&F": 0.35})
    weak_attribute = check(rows((0.30, 0.40)), 0.05, quick=False, losses=MEASURED,
                           tiers=tiers(0.59))
    assert not weak_attribute["passed"] and "attribute-tier" in weak_attribute["verdict"]
    with pytest.raises(ValueError, match="tier scores"):
        check(rows((0.30, 0.40)), 0.05, quick=False, losses=MEASURED)


def test_full_check_fails_on_untrained_scores():
    """The untrained model's own scores, as if they were the trained model's."""
    check = load_script("run_demo").improvement_check
    untrained = rows((0.014, 0.039), untrained=(0.0, 0.0), forced=(0.014, 0.039),
                     every=(0.213, 0.446))
    result = check(untrained, 0.05, quick=False, losses=MEASURED, tiers=tiers(0.02))
    assert not result["passed"]


def test_quick_check_needs_a_lower_held_out_loss():
    check = load_script("run_demo").improvement_check
    quick = check(rows((0.0, 0.0)), 0.05, quick=True, losses=MEASURED)
    assert quick["passed"] and quick["verdict"].startswith("passed")
    same = losses((9.08, 0.35, 1.89), (9.08, 0.35, 1.89))
    assert not check(rows((0.0, 0.0)), 0.05, quick=True, losses=same)["passed"]
    # the total drops but the mask terms do not: the model learned only to talk
    talk = losses((6.0, 0.35, 1.89), (9.08, 0.35, 1.89))
    assert not check(rows((0.0, 0.0)), 0.05, quick=True, losses=talk)["passed"]


def test_quick_check_fails_on_an_untrained_model(tmp_path):
    """The held-out losses of the untrained init, as if it were the trained model."""
    from mpr_cma.engine.config import load_config
    from mpr_cma.engine.held_out_loss import held_out_loss

    demo = load_script("run_demo")
    data = make_quick_data(tmp_path / "data")
    cfg = load_config(demo.parse_args([]).config, {"data_root": str(data)})
    untrained = held_out_loss(cfg, None)
    assert held_out_loss(cfg, None) == untrained   # deterministic
    result = demo.improvement_check(rows((0.0, 0.0)), 0.05, quick=True,
                                    losses={"trained": untrained, "untrained": untrained})
    assert not result["passed"] and result["verdict"].startswith("FAILED")


def test_a_work_dir_serves_one_setting(tmp_path):
    demo = load_script("run_demo")
    args = demo.parse_args(["--work-dir", str(tmp_path), "--seed", "3"])
    demo.check_work_dir(tmp_path, args)
    demo.check_work_dir(tmp_path, args)  # the same setting resumes
    with pytest.raises(SystemExit, match="made with"):
        demo.check_work_dir(tmp_path, demo.parse_args(["--work-dir", str(tmp_path), "--quick"]))


def test_existing_data_of_another_seed_is_refused(tmp_path):
    demo = load_script("run_demo")
    data = make_quick_data(tmp_path / "data")  # seed 0
    steps = demo.Steps(tmp_path / "logs")
    demo.make_data(steps, data, 0, quick=True, image_size=64)
    assert steps.commands == []  # reused
    with pytest.raises(SystemExit, match="seed 0, not 1"):
        demo.make_data(steps, data, 1, quick=True, image_size=64)
    with pytest.raises(SystemExit, match="64 px images, the config's sam2_image_size is 128"):
        demo.make_data(steps, data, 0, quick=True, image_size=128)


def test_data_is_written_at_the_configs_sam2_image_size(tmp_path):
    demo = load_script("run_demo")
    assert demo.config_image_size(ROOT / "configs/tiny/demo.py") == 64
    leaf = tmp_path / "demo128.py"
    leaf.write_text(f"_base_ = [{str(ROOT / 'configs/tiny/demo.py')!r}]\nsam2_image_size = 128\n")
    assert demo.config_image_size(leaf) == 128
    steps = demo.Steps(tmp_path / "logs")
    steps.run = lambda name, command: steps.commands.append(command)
    demo.make_data(steps, tmp_path / "data", 0, quick=True, image_size=128)
    assert "--image-size=128" in steps.commands[0]


def test_quick_demo_writes_every_report_file(tmp_path):
    work = tmp_path / "demo"
    (work / "data" / "refcoco").mkdir(parents=True)  # an interrupted generation: replaced
    proc = subprocess.run([sys.executable, "scripts/run_demo.py", "--quick", "--work-dir",
                           str(work), "--figures", "3"], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = work / "report"
    for name in REPORT_FILES:
        assert (report / name).is_file(), name
    for name in REPORT_FILES[2:]:
        assert Image.open(report / name).format == "PNG"
    results = json.loads((report / "results.json").read_text())
    assert set(results["metrics"]) == {"trained", "untrained", "untrained_seg_forced",
                                       "every_object"}
    for row in results["metrics"].values():
        assert 0.0 <= row["cIoU"] <= 1.0 and 0.0 <= row["J&F"] <= 1.0
    assert results["metrics"]["untrained_seg_forced"]["no_seg"] == 0  # the answer is forced
    assert results["check"]["passed"] and results["quick"]   # the held-out loss dropped
    held_out = results["held_out_loss"]
    assert held_out["trained"]["loss"] < held_out["untrained"]["loss"]
    assert results["figure_errors"] == {}
    assert any("make_synthetic_data.py" in c and "--overwrite" in c
               for c in results["commands"])
    assert any("dist_train.sh" in c for c in results["commands"])
    assert sum("dist_test.sh" in c for c in results["commands"]) == 6
    shares = results["mask_shares"]
    assert shares["all"]["num_items"] == results["results"]["trained"]["refcoco_val"][
        "num_items"]
    summary = (report / "summary.md").read_text()
    assert "every object" in summary and "fig5_attention.png" in summary
    assert "| all | " in summary.split("predicted pixels lie")[1]
    assert (work / "train" / "last_checkpoint").is_file()


def test_mask_share_table_rows():
    demo = load_script("run_demo")
    row = {"target": 0.5, "same_shape": 0.1, "same_colour": 0.3, "other_object": 0.05,
           "background": 0.05, "num_items": 7}
    lines = demo.mask_share_table({"attribute": row, "all": {**row, "num_items": 9}})
    assert lines[2] == "| attribute | 7 | 0.50 | 0.10 | 0.30 | 0.05 | 0.05 |"
    assert lines[3].startswith("| all | 9 |") and len(lines) == 4
