"""Every shipped config loads through its real base chain, has no dead knob, and each knob of
configs/README.md reaches the objects built from it, set in a leaf file or with
--cfg-options (the model: tiny for real, 1B on the meta device; optimizer, LR schedulers
and their LR curve, hooks, strategy, datasets, data loaders, train and validation loops)."""

import math
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.registry import DefaultScope
from mmengine.runner import LogProcessor, Runner

import mpr_cma.engine  # noqa: F401  (registers loops, hooks, strategy, validation)
import mpr_cma.models  # noqa: F401
from mpr_cma.datasets.fake_refer import FakeReferDataset
from mpr_cma.datasets.repeat import RepeatedDataset
from mpr_cma.engine.config import RUNNER_FIELDS, load_config, unused_fields
from mpr_cma.engine.loops import ResumableTrainLoop
from mpr_cma.engine.runner import scope_collate_functions
from mpr_cma.models.mllm.tokenizer import tiny_tokenizer_path
from mpr_cma.registry import DATASETS, HOOKS, METRICS, MODELS
from tests.datasets._train_data import write_llava_root

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
LEAVES = sorted(p for p in CONFIGS.rglob("*.py") if "_base_" not in p.parts)
ONE_B = [p for p in LEAVES if "tiny" not in p.parts]
# The 1B model is built on meta without weights and with the shipped tokenizer.
META = {"pretrained_root": None, "tokenizer": "tiny"}
# Iterations per epoch of the schedule checks: the 1B's 5% warm-up spans 5 of them (a
# warm-up of one iteration would leave mmengine's LinearLR at its start factor).
EPOCH = 100


def rel(path: Path) -> str:
    return str(path.relative_to(CONFIGS))


def knobs_in_readme() -> set[str]:
    text = (CONFIGS / "README.md").read_text()
    return set(re.findall(r"^\| `(\w+)` \|", text, flags=re.M))


# ---------------------------------------------------------------------- loading
@pytest.mark.parametrize("path", LEAVES, ids=rel)
def test_every_leaf_resolves_and_every_field_is_live_and_documented(path):
    cfg = load_config(path, import_custom_modules=False)
    assert "${" not in cfg.pretty_text
    assert unused_fields(path) == []
    undocumented = {k for k in cfg if k not in RUNNER_FIELDS} - knobs_in_readme()
    assert not undocumented, f"not in configs/README.md: {sorted(undocumented)}"
    imports = (cfg.get("custom_imports") or {}).get("imports", [])
    assert not [m for m in imports if m.split(".")[0] == "tests"]   # configs never import tests


def test_no_config_copies_base_values():
    for path in CONFIGS.rglob("*.py"):
        assert "{{_base_" not in path.read_text(), path


# ---------------------------------------------------------------------- data
@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """The synthetic benchmark (RefCOCO and MeViS layouts) extended to every dataset of
    the 1B recipe: refcoco+ / refcocog (umd) copies, ReVOS / Ref-YTVOS copies, LLaVA."""
    root = tmp_path_factory.mktemp("data")
    proc = subprocess.run([sys.executable, "scripts/make_synthetic_data.py", "--out",
                           str(root), "--seed", "0", "--train-images=4", "--val-images=3",
                           "--test-images=1", "--train-videos=2", "--val-videos=2",
                           "--frames=3", "--attribute-train-images=2", "--overwrite"],
                          cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    shutil.copytree(root / "refcoco", root / "refcoco+")
    shutil.copytree(root / "refcoco", root / "refcocog")
    (root / "refcocog" / "refs(unc).p").rename(root / "refcocog" / "refs(umd).p")
    for name in ("revos", "ref_ytvos"):
        shutil.copytree(root / "mevis" / "train", root / name / "train")
    write_llava_root(root / "llava")
    shutil.copy(root / "llava" / "llava.json", root / "llava" / "llava_v1_5_mix665k.json")
    return root


def base_options(path: Path, data_root: Path) -> dict:
    """Options every check of `path` needs: data under `data_root`, the 1B model on meta."""
    options = dict(META) if path in ONE_B else {}
    cfg = load_config(path, import_custom_modules=False)
    if "data_root" in cfg:
        options["data_root"] = str(data_root)
    if "val_data_root" in cfg:
        options["val_data_root"] = str(data_root)
    return options


def load(path: Path, data_root: Path, leaf: str | None, options: dict, tmp_path: Path,
         knob: str):
    """`path` with `leaf` (config lines) written over it, or with `options`."""
    base = base_options(path, data_root)
    base.pop(knob, None)   # the knob under test is not overridden by the test's setup
    if leaf is None:
        return load_config(path, {**base, **options})
    file = tmp_path / "leaf.py"
    file.write_text(f"_base_ = [{str(path)!r}]\n{leaf}\n")
    return load_config(file, base)


# ---------------------------------------------------------------------- builders
def build_model(path: Path, cfg):
    torch.manual_seed(0)
    with torch.device("meta" if path in ONE_B else "cpu"):
        return MODELS.build(cfg.model)


def build_loader(cfg, key: str = "train_dataloader"):
    scope_collate_functions(cfg)
    with DefaultScope.overwrite_default_scope("mpr_cma"):
        return Runner.build_dataloader(cfg[key], seed=0)


def build_optimizer(cfg):
    from mmengine.registry import OPTIMIZERS

    param = torch.nn.Parameter(torch.zeros(2))
    return OPTIMIZERS.build(dict(cfg.optim_wrapper.optimizer, params=[param]))


def build_schedulers(cfg, optimizer, epoch_length: int = EPOCH):
    """As mmengine's Runner.build_param_scheduler: epoch bounds converted to iterations."""
    from mmengine.registry import PARAM_SCHEDULERS

    out = []
    for scheduler in cfg.param_scheduler:
        scheduler = dict(scheduler)
        kind = PARAM_SCHEDULERS.get(scheduler.pop("type"))
        if scheduler.pop("convert_to_iter_based", False):
            out.append(kind.build_iter_from_epoch(optimizer=optimizer, **scheduler,
                                                  epoch_length=epoch_length))
        else:
            out.append(kind(optimizer=optimizer, **scheduler))
    return out


def lr_curve(cfg, epoch_length: int = EPOCH) -> list[float]:
    """The learning rate of every iteration of the run, stepping the built schedulers as
    mmengine's ParamSchedulerHook does (after each iteration)."""
    optimizer = build_optimizer(cfg)
    schedulers = build_schedulers(cfg, optimizer, epoch_length)
    curve = []
    for _ in range(int(cfg.train_cfg.max_epochs * epoch_length)):
        curve.append(optimizer.param_groups[0]["lr"])
        for scheduler in schedulers:
            scheduler.step()
    return curve


def expected_curve(lr: float, start: float, eta_min: float, warmup: int, total: int):
    """mmengine's LinearLR over iterations [0, warmup) (factor start -> 1 in warmup - 1
    steps) then CosineAnnealingLR from lr to eta_min over [warmup, total), closed form."""
    return [lr * (start + (1 - start) * t / (warmup - 1)) if t < warmup else
            eta_min + (lr - eta_min) * (1 + math.cos(math.pi * (t - warmup)
                                                     / (total - warmup))) / 2
            for t in range(total)]


def build_train_loop(cfg, dataset_length: int = EPOCH):
    loader = torch.utils.data.DataLoader(list(range(dataset_length)), batch_size=1)
    runner = SimpleNamespace(visualizer=SimpleNamespace(), _randomness_cfg={}, seed=0)
    train_cfg = dict(cfg.train_cfg)
    train_cfg.pop("type")
    return ResumableTrainLoop(runner, loader, **train_cfg)


def build_val_loop(cfg):
    loader = build_loader(cfg, "val_dataloader")
    runner = SimpleNamespace(visualizer=SimpleNamespace())
    loop_cfg = dict(cfg.val_cfg)
    kind = loop_cfg.pop("type")
    from mmengine.registry import LOOPS

    with DefaultScope.overwrite_default_scope("mpr_cma"):
        return LOOPS.get(kind)(runner, loader, Evaluator(METRICS.build(cfg.val_evaluator)),
                               **loop_cfg)


def built_hook(cfg, name: str):
    if name in cfg.default_hooks:
        return HOOKS.build(cfg.default_hooks[name])
    return next(HOOKS.build(h) for h in cfg.custom_hooks if h["type"] == name)


def datasets_of(loader, unwrap: bool = True):
    """The built training datasets (RepeatedDataset wrappers taken off unless `unwrap` is
    False)."""
    dataset = loader.dataset
    parts = list(getattr(dataset, "datasets", [dataset]))
    return [d.dataset if unwrap and isinstance(d, RepeatedDataset) else d for d in parts]


# ---------------------------------------------------------------------- knob checks
# knob -> (leaf text, --cfg-options, check(path, cfg, tmp_path)); None: that way is not
# tested for the knob (the reason is in the check's comment). Leaf text and options may be
# functions of the shipped config.
def _mba_leaf(cfg0) -> str:
    # A baseline's `mba = None` has no fields to merge into: replace it whole.
    return ("mba = dict(_delete_=True, type='MaskBiasedAttention', top_k=2)"
            if cfg0.mba is None else "mba = dict(top_k=2)")


def check_mba(path, cfg, tmp_path):
    model = build_model(path, cfg)
    assert model.grounding.mba.router.top_k == 2


def check_criterion(path, cfg, tmp_path):
    assert build_model(path, cfg).criterion.tmc_weight == 0.3


def check_pretrained_root(path, cfg, tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "weights"))):
        build_model(path, cfg)


def check_tokenizer(path, cfg, tmp_path):
    folder = str(tiny_tokenizer_path())
    assert build_model(path, cfg).tokenizer.name_or_path == folder
    if cfg.get("train_dataset") is not None:
        assert all(d.tokenizer.name_or_path == folder for d in datasets_of(build_loader(cfg)))


def check_lr_and_weight_decay(path, cfg, tmp_path):
    group = build_optimizer(cfg).param_groups[0]
    assert (group["lr"], group["weight_decay"]) == (3e-4, 0.2)
    assert max(lr_curve(cfg)) == pytest.approx(3e-4)   # the peak, after the warm-up


def _schedule_checks(cfg, epochs: float, ratio: float):
    curve = lr_curve(cfg)
    total = int(epochs * EPOCH)
    linear, cosine = cfg.param_scheduler
    warmup = int(ratio * epochs * EPOCH)
    assert len(curve) == total == build_train_loop(cfg).max_iters
    expected = expected_curve(cfg.optim_wrapper.optimizer.lr, linear.start_factor,
                              cosine.eta_min, warmup, total)
    assert curve == pytest.approx(expected, rel=1e-6, abs=1e-12)
    hook = built_hook(cfg, "WarmupHook")
    assert hook.mba_warmup_ratio == hook.aux_warmup_ratio == ratio
    # The MBA / aux ramps end where the LR warm-up ends.
    scales = [hook.apply(torch.nn.Module(), i, total)["mba_warmup"] for i in range(total)]
    assert scales.index(1.0) == warmup - 1


def check_max_epochs(path, cfg, tmp_path):
    _schedule_checks(cfg, 2, cfg.warmup_ratio)
    curve = lr_curve(cfg)
    # The second epoch is not spent at ~0 (the schedule ends at epoch 2, not 1).
    assert curve[EPOCH] > 0.3 * max(curve) and curve[-1] < 0.05 * max(curve)


def check_warmup_ratio(path, cfg, tmp_path):
    _schedule_checks(cfg, cfg.max_epochs, 0.25)


def check_batch_size(path, cfg, tmp_path):
    assert build_loader(cfg).batch_size == 3
    assert cfg.strategy.train_micro_batch_size_per_gpu == 3
    from mmengine.registry import STRATEGIES

    assert STRATEGIES.build(cfg.strategy).config["train_micro_batch_size_per_gpu"] == 3


def check_accumulative_counts(path, cfg, tmp_path):
    from mmengine.registry import STRATEGIES

    assert STRATEGIES.build(cfg.strategy).config["gradient_accumulation_steps"] == 3
    sampler = build_loader(cfg).sampler
    if hasattr(sampler, "per_device_batch_size"):   # the length-grouped sampler of 1B
        assert sampler.per_device_batch_size == cfg.batch_size * 3


def check_num_workers(path, cfg, tmp_path):
    assert build_loader(cfg).num_workers == 1


def dataset_folder(dataset) -> Path:
    """The folder a built dataset reads: its images (RefCOCO, LLaVA) or its split (video)."""
    split = getattr(dataset, "split", None)
    return Path(split.root if hasattr(split, "root") else dataset.image_root)


def check_data_root(path, cfg, tmp_path):
    moved = (tmp_path / "moved").resolve()
    folders = [dataset_folder(d).resolve() for d in datasets_of(build_loader(cfg))]
    assert folders and all(f.is_relative_to(moved) for f in folders), folders


def check_max_length(path, cfg, tmp_path):
    assert {d.max_length for d in datasets_of(build_loader(cfg))} == {1000}


def _other_answer_style(cfg0) -> str:
    """The answer_style a config does not ship (the demo 'seg_names_object', else 'sa2va')."""
    return {"sa2va": "seg_names_object", "seg_names_object": "sa2va"}[cfg0.answer_style]


def check_answer_style(path, cfg, tmp_path):
    shipped = load_config(path, import_custom_modules=False).answer_style
    datasets = referring_datasets(cfg)
    assert datasets and {d.answer_style for d in datasets} == {cfg.answer_style} != {shipped}


def check_sam2_image_size(path, cfg, tmp_path):
    datasets = referring_datasets(cfg)
    assert datasets and {d.sam2_image_size for d in datasets} == {128}
    assert datasets[0][0]["g_pixel_values"].shape[-2:] == (128, 128)
    assert cfg.model.grounding.image_size == 128


def referring_datasets(cfg):
    return [d for d in datasets_of(build_loader(cfg))
            if type(d).__name__ in ("RefCOCODataset", "RefVOSDataset")]


def check_objects_per_sample(path, cfg, tmp_path):
    built = referring_datasets(cfg)
    assert built and {(d.max_objects, d.replace) for d in built} == {(3, False)}
    picked = built[0][0]["meta"]
    objects = picked.get("ref_ids", picked.get("exp_ids"))
    assert len(objects) == len(set(objects)) <= 3


def _other_gt_size(cfg0) -> str:
    """The gt_mask_size a config does not have (the 1B ones 'pred', the tiny ones 'input')."""
    return {"pred": "input", "input": "pred"}[cfg0.gt_mask_size]


def check_gt_mask_size(path, cfg, tmp_path):
    shipped = load_config(path, import_custom_modules=False).gt_mask_size
    assert build_model(path, cfg).gt_mask_size == cfg.gt_mask_size != shipped


def _first_dataset_option(cfg0) -> dict:
    # the 1B mix wraps each dataset in RepeatedDataset (Sa2VA's repeats)
    wrapped = cfg0.train_dataset.datasets[0].type == "RepeatedDataset"
    return {f"train_dataset.datasets.0.{'dataset.' if wrapped else ''}max_objects": 2}


def _llm_checkpointing(model) -> bool:
    llm = model.mllm.language_model
    return (llm.get_base_model() if hasattr(llm, "get_base_model") else llm
            ).is_gradient_checkpointing


def check_llm_gradient_checkpointing(path, cfg, tmp_path):
    shipped = load_config(path, import_custom_modules=False).llm_gradient_checkpointing
    built = _llm_checkpointing(build_model(path, cfg))
    assert built == cfg.llm_gradient_checkpointing != shipped


def check_train_dataset(path, cfg, tmp_path):
    built = datasets_of(build_loader(cfg))
    first = cfg.train_dataset.datasets[0]
    first = first.dataset if first.type == "RepeatedDataset" else first
    if first.get("max_objects") == 2:   # the --cfg-options way
        assert built[0].max_objects == 2
    else:
        assert [type(d).__name__ for d in built] == ["RefCOCODataset"]


def check_dataset_repeats(path, cfg, tmp_path):
    shipped = load_config(path, import_custom_modules=False).dataset_repeats
    wrappers = datasets_of(build_loader(cfg), unwrap=False)
    repeats = {d.dataset.name: d.repeats for d in wrappers
               if type(d.dataset).__name__ == "RefVOSDataset"}
    assert repeats == {"revos": 2, "mevis": shipped.mevis, "ref_ytvos": shipped.ref_ytvos}
    for d in wrappers:
        assert len(d) == int(len(d.dataset) * d.repeats)
    assert sum(len(d) for d in wrappers) == len(build_loader(cfg).dataset)


def check_collate_fn(path, cfg, tmp_path):
    assert build_loader(cfg).collate_fn.keywords == {"pad_token_id": 7}


def check_save_steps(path, cfg, tmp_path):
    assert built_hook(cfg, "checkpoint").interval == 8


def check_save_total_limit(path, cfg, tmp_path):
    assert built_hook(cfg, "checkpoint").max_keep_ckpts == 5


def check_log_interval(path, cfg, tmp_path):
    assert built_hook(cfg, "logger").interval == 3
    assert LogProcessor(**cfg.log_processor).window_size == 3


def check_use_tensorboard(path, cfg, tmp_path):
    from mmengine.registry import VISUALIZERS

    vis = VISUALIZERS.build(dict(cfg.visualizer, name=f"knob-{tmp_path.name}",
                                 save_dir=str(tmp_path / "vis")))
    assert type(vis.get_backend("TensorboardVisBackend")).__name__ == "TensorboardVisBackend"


def check_val_interval(path, cfg, tmp_path):
    assert build_train_loop(cfg).val_interval == 5
    assert isinstance(build_val_loop(cfg).dataloader.dataset, DATASETS.get("ReferValDataset"))


def check_val_data_root(path, cfg, tmp_path):
    assert build_val_loop(cfg).dataloader.dataset.data_root == tmp_path / "moved"


def check_val_splits(path, cfg, tmp_path):
    assert build_val_loop(cfg).dataloader.dataset.metainfo["sources"] == ["refcoco_val"]


def check_val_items(path, cfg, tmp_path):
    dataset = build_val_loop(cfg).dataloader.dataset
    assert len(dataset) == len(cfg.val_splits) == len(dataset.metainfo["sources"])


def check_val_answer(path, cfg, tmp_path):
    assert build_val_loop(cfg).answer == "It is [SEG]."


def check_val_batch_size(path, cfg, tmp_path):
    assert build_val_loop(cfg).dataloader.batch_size == 3


def check_num_key_frames(path, cfg, tmp_path):
    assert build_val_loop(cfg).num_key_frames == 3


def check_val_loader(path, cfg, tmp_path):
    assert build_val_loop(cfg).dataloader.num_workers == 1


VAL_ON = "val_interval = 5\n"
KNOBS = {
    "mba": (_mba_leaf, {"mba.top_k": 2}, check_mba),
    "criterion": ("criterion = dict(tmc_weight=0.3)", {"criterion.tmc_weight": 0.3},
                  check_criterion),
    "pretrained_root": ("pretrained_root = {weights!r}", {"pretrained_root": "{weights}"},
                        check_pretrained_root),
    "tokenizer": ("tokenizer = {tokenizer!r}", {"tokenizer": "{tokenizer}"}, check_tokenizer),
    # Set to the value the config does not ship (the tiny configs ship 'input').
    "gt_mask_size": (lambda cfg0: f"gt_mask_size = {_other_gt_size(cfg0)!r}",
                     lambda cfg0: {"gt_mask_size": _other_gt_size(cfg0)}, check_gt_mask_size),
    "llm_gradient_checkpointing": (
        lambda cfg0: f"llm_gradient_checkpointing = {not cfg0.llm_gradient_checkpointing}",
        lambda cfg0: {"llm_gradient_checkpointing": not cfg0.llm_gradient_checkpointing},
        check_llm_gradient_checkpointing),
    "lr": ("lr = 3e-4\nweight_decay = 0.2", {"lr": 3e-4, "weight_decay": 0.2},
           check_lr_and_weight_decay),
    "max_epochs": ("max_epochs = 2", {"train_cfg.max_epochs": 2}, check_max_epochs),
    "warmup_ratio": ("warmup_ratio = 0.25", {"warmup_ratio": 0.25}, check_warmup_ratio),
    "batch_size": ("batch_size = 3", {"batch_size": 3}, check_batch_size),
    "accumulative_counts": ("accumulative_counts = 3", {"accumulative_counts": 3},
                            check_accumulative_counts),
    "num_workers": ("num_workers = 1", {"num_workers": 1}, check_num_workers),
    "data_root": ("data_root = {moved!r}", {"data_root": "{moved}"}, check_data_root),
    "max_length": ("max_length = 1000", {"max_length": 1000}, check_max_length),
    "objects_per_sample": ("objects_per_sample = 3\nobjects_with_replacement = False",
                           {"objects_per_sample": 3, "objects_with_replacement": False},
                           check_objects_per_sample),
    "train_dataset": ("train_dataset = dict(_delete_=True, type='ConcatDataset', datasets=["
                      "dict(type='RefCOCODataset', data_root='${{data_root}}', "
                      "dataset='refcoco', split='train', tokenizer='${{tokenizer}}')])",
                      _first_dataset_option, check_train_dataset),
    # Set to the style the config does not ship (the demo ships 'seg_names_object').
    "answer_style": (lambda cfg0: f"answer_style = {_other_answer_style(cfg0)!r}",
                     lambda cfg0: {"answer_style": _other_answer_style(cfg0)},
                     check_answer_style),
    "sam2_image_size": ("sam2_image_size = 128", {"sam2_image_size": 128},
                        check_sam2_image_size),
    "dataset_repeats": ("dataset_repeats = dict(revos=2)", {"dataset_repeats.revos": 2},
                        check_dataset_repeats),
    "collate_fn": ("collate_fn = dict(pad_token_id=7)", {"collate_fn.pad_token_id": 7},
                   check_collate_fn),
    "save_steps": ("save_steps = 8", {"save_steps": 8}, check_save_steps),
    "save_total_limit": ("save_total_limit = 5", {"save_total_limit": 5},
                         check_save_total_limit),
    "log_interval": ("log_interval = 3", {"log_interval": 3}, check_log_interval),
    "use_tensorboard": ("use_tensorboard = True", {"use_tensorboard": True},
                        check_use_tensorboard),
    "val_interval": (VAL_ON, {"val_interval": 5}, check_val_interval),
    "val_data_root": (VAL_ON + "val_data_root = {moved!r}",
                      {"val_interval": 5, "val_data_root": "{moved}"}, check_val_data_root),
    "val_splits": (VAL_ON + "val_splits = [dict(dataset='refcoco', split='val')]", None,
                   check_val_splits),
    "val_items": (VAL_ON + "val_items = 1", {"val_interval": 5, "val_items": 1},
                  check_val_items),
    "val_answer": (VAL_ON + "val_answer = 'It is [SEG].'",
                   {"val_interval": 5, "val_answer": "It is [SEG]."}, check_val_answer),
    "val_batch_size": (VAL_ON + "val_batch_size = 3",
                       {"val_interval": 5, "val_batch_size": 3}, check_val_batch_size),
    "num_key_frames": (VAL_ON + "num_key_frames = 3",
                       {"val_interval": 5, "num_key_frames": 3}, check_num_key_frames),
    "val_loader": (VAL_ON + "val_loader = dict(num_workers=1)",
                   {"val_interval": 5, "val_loader.num_workers": 1}, check_val_loader),
}
# Checked elsewhere: weight_decay with lr, objects_with_replacement with objects_per_sample;
# the knobs' README rows are checked above.
DOCUMENTED_WITH = {"weight_decay": "lr", "objects_with_replacement": "objects_per_sample"}


def test_every_documented_knob_has_an_end_to_end_check():
    # every knob's check runs on each leaf that has it (cases() below)
    assert knobs_in_readme() == set(KNOBS) | set(DOCUMENTED_WITH)


# The 1B model is slow to build even on meta (~5 s): its model knobs are set together,
# one build per way and leaf.
MODEL_KNOBS = ("mba", "criterion", "tokenizer", "gt_mask_size", "llm_gradient_checkpointing")


def check_model_knobs(path, cfg, tmp_path):
    model = build_model(path, cfg)
    assert model.grounding.mba.router.top_k == 2 and model.criterion.tmc_weight == 0.3
    assert model.gt_mask_size == "input"   # the 1B configs ship Sa2VA's 'pred'
    assert not _llm_checkpointing(model)   # the 1B configs ship Sa2VA's True
    folder = str(tiny_tokenizer_path())
    assert model.tokenizer.name_or_path == folder
    assert all(d.tokenizer.name_or_path == folder for d in datasets_of(build_loader(cfg)))


def cases():
    for path in LEAVES:
        fields = set(load_config(path, import_custom_modules=False))
        for knob in KNOBS:
            if knob in fields and not (path in ONE_B and knob in MODEL_KNOBS):
                yield pytest.param(path, knob, id=f"{rel(path)}-{knob}")
        if path in ONE_B:
            yield pytest.param(path, "model",
                               id=f"{rel(path)}-model-knobs",
                               marks=[pytest.mark.slow])


@pytest.mark.parametrize(("path", "knob"), list(cases()))
def test_knob_reaches_the_built_objects(path, knob, data_root, tmp_path):
    cfg0 = load_config(path, import_custom_modules=False)
    if knob == "model":   # the 1B model knobs, one build per way
        tokenizer = str(tiny_tokenizer_path())
        leaf = "\n".join([_mba_leaf(cfg0), KNOBS["criterion"][0], f"tokenizer = {tokenizer!r}",
                          "gt_mask_size = 'input'", "llm_gradient_checkpointing = False"])
        check_model_knobs(path, load(path, data_root, leaf, {}, tmp_path, "tokenizer"),
                          tmp_path)
        if cfg0.mba is not None:   # a baseline's None has no top_k to set on the command line
            options = {**KNOBS["criterion"][1], **KNOBS["mba"][1], "tokenizer": tokenizer,
                       "gt_mask_size": "input", "llm_gradient_checkpointing": False}
            check_model_knobs(path, load(path, data_root, None, options, tmp_path,
                                         "tokenizer"), tmp_path)
        return
    leaf, options, check = KNOBS[knob]
    if knob == "pretrained_root" and path in ONE_B:
        pytest.skip("the 1B model is built on meta without weights; the tiny leaves check "
                    "that the path reaches the weight loaders")
    shutil.copytree(data_root, tmp_path / "moved")
    values = {"weights": str(tmp_path / "weights"), "moved": str(tmp_path / "moved"),
              "tokenizer": str(tiny_tokenizer_path())}
    leaf = leaf(cfg0) if callable(leaf) else leaf.format(**values)
    options = options(cfg0) if callable(options) else options
    check(path, load(path, data_root, leaf, {}, tmp_path, knob), tmp_path)
    if options is not None:   # dicts cannot be written on the command line
        options = {k: v.format(**values) if isinstance(v, str) and "{" in v else v
                   for k, v in options.items()}
        if knob == "mba" and cfg0.mba is None:
            return   # a baseline's None has no top_k to set; the leaf way replaces it
        check(path, load(path, data_root, None, options, tmp_path, knob), tmp_path)


def test_fake_data_is_a_package_dataset():
    assert DATASETS.get("FakeReferDataset") is FakeReferDataset


def test_24gb_preset_keeps_the_recipe_step_with_one_sample_per_gpu(data_root):
    """configs/mba_1b_24gb.py: batch 1 x 8 accumulation reaches the loader, the sampler's
    groups (8 samples a GPU, as the recipe's 2 x 4) and DeepSpeed; checkpointing reaches the
    built model; the recipe's objects per sample are kept."""
    from mmengine.registry import STRATEGIES

    path = CONFIGS / "mba_1b_24gb.py"
    cfg = load_config(path, base_options(path, data_root))
    recipe = load_config(CONFIGS / "mba_1b.py", base_options(CONFIGS / "mba_1b.py", data_root))
    loader = build_loader(cfg)
    assert loader.batch_size == 1
    # xtuner's sampler keeps no per_device_batch_size attribute: the resolved config is
    # what it was built from
    assert type(loader.sampler).__name__ == "LengthGroupedSampler"
    assert cfg.train_dataloader.sampler.per_device_batch_size == 8 == (
        recipe.batch_size * recipe.accumulative_counts)
    strategy = STRATEGIES.build(cfg.strategy).config
    assert (strategy["train_micro_batch_size_per_gpu"],
            strategy["gradient_accumulation_steps"]) == (1, 8)
    assert {d.max_objects for d in referring_datasets(cfg)} == {recipe.objects_per_sample}
    assert _llm_checkpointing(build_model(path, cfg))
