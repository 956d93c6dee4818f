"""Glue from a config to a running mmengine runner (used by tools/train.py).

`setup_config` applies the command-line choices (work dir, resume, launcher) to a config
loaded by `mpr_cma.engine.config.load_config` and resolves the distributed backend:
`dist_cfg.backend = 'auto'` becomes nccl when CUDA is available and gloo otherwise, so the
same DeepSpeed ZeRO-2 path runs on a CPU machine under torchrun. `build_runner` builds
FlexibleRunner (configs with a `strategy`) or Runner.

Resume: `resume='auto'` picks the latest complete checkpoint of the work dir (partial
saves are never taken, see `checkpoint.find_latest_checkpoint`) and starts from scratch
when there is none; a path resumes from that checkpoint. Weights, optimizer, lr schedule,
iteration, message hub and every rank's RNG state are restored; the iteration-based loop
starts the sampler where it stopped, without loading the batches already trained on
(mpr_cma.engine.resume).
"""

import os
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import FlexibleRunner, Runner
from mmengine.utils import import_modules_from_strings

from mpr_cma.engine.checkpoint import find_latest_checkpoint
from mpr_cma.engine.pipeline import free_port
from mpr_cma.registry import FUNCTIONS


def default_backend() -> str:
    """nccl when CUDA is usable, gloo otherwise (CPU runs of the same DeepSpeed path)."""
    return "nccl" if torch.cuda.is_available() else "gloo"


def single_process_env() -> None:
    """torchrun's variables for a one-process world, so DeepSpeed can init without torchrun."""
    defaults = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1",
                "MASTER_ADDR": "127.0.0.1"}
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("MASTER_PORT", str(free_port()))


def resolve_resume(resume: str | None, work_dir: str) -> str | bool:
    """'auto' -> latest complete checkpoint of `work_dir` or False; a path -> that path."""
    if not resume:
        return False
    if resume == "auto":
        latest = find_latest_checkpoint(work_dir)
        print_log(f"auto-resume: {latest or 'no checkpoint, starting from scratch'}",
                  logger="current")
        return latest or False
    if not osp.exists(resume):
        raise FileNotFoundError(f"--resume checkpoint not found: {resume}")
    return resume


def setup_config(cfg: Config, work_dir: str | None = None, resume: str | None = None,
                 launcher: str = "none", config_path: str | None = None) -> Config:
    """Fill the run-time fields of a training config in place and return it.

    Args:
        cfg: the config of `load_config` (references resolved, --cfg-options applied).
        work_dir: output folder; default `work_dirs/<config name>`.
        resume: None, 'auto' or a checkpoint path.
        launcher: 'none' or 'pytorch' (torchrun).
        config_path: the config file, for the default work dir.
    """
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get("work_dir") is None:
        name = osp.splitext(osp.basename(config_path or "run"))[0]
        cfg.work_dir = osp.join("work_dirs", name)
    dist_cfg = cfg.setdefault("env_cfg", {}).setdefault("dist_cfg", {})
    if dist_cfg.get("backend", "auto") == "auto":
        dist_cfg["backend"] = default_backend()
    uses_strategy = cfg.get("strategy") is not None
    if launcher == "none" and uses_strategy:
        # DeepSpeed needs a process group even for one process.
        single_process_env()
        launcher = "pytorch"
    cfg.launcher = launcher
    cfg.resume = resolve_resume(resume, cfg.work_dir)
    if cfg.resume:
        cfg.load_from = None
    _check_checkpoint_interval(cfg)
    return cfg


def scope_collate_functions(cfg: Config) -> None:
    """Prefix the dataloaders' collate `type` with `mpr_cma.` when our registry holds it.

    mmengine's runners look collate functions up with the root FUNCTIONS.get, which
    ignores `default_scope`; an explicit scope finds functions of mpr_cma.registry.FUNCTIONS.
    Call after `custom_imports` ran (the runner imports them; `build_runner` does it here).
    """
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        collate = (cfg.get(key) or {}).get("collate_fn")
        name = collate.get("type") if isinstance(collate, dict) else None
        if isinstance(name, str) and "." not in name and FUNCTIONS.get(name) is not None:
            collate["type"] = f"mpr_cma.{name}"


def _check_checkpoint_interval(cfg: Config) -> None:
    """Checkpoints must fall on optimizer steps: accumulated gradients are not saved."""
    accumulation = (cfg.get("strategy") or {}).get("gradient_accumulation_steps", 1) or 1
    ckpt = cfg.get("default_hooks", {}).get("checkpoint") or {}
    interval = ckpt.get("interval", 1)
    if accumulation > 1 and interval % accumulation:
        raise ValueError(f"checkpoint interval {interval} is not a multiple of the "
                         f"gradient accumulation steps {accumulation}: resuming would drop "
                         "the accumulated gradients")


def build_runner(cfg: Config) -> Runner | FlexibleRunner:
    """FlexibleRunner for configs with a DeepSpeed `strategy`, else mmengine's Runner."""
    import mpr_cma.engine  # noqa: F401  (registers loops, strategy and hooks)

    if cfg.get("custom_imports"):
        import_modules_from_strings(**cfg.custom_imports)
    scope_collate_functions(cfg)
    if cfg.get("runner_type", "Runner") == "FlexibleRunner" or cfg.get("strategy"):
        return FlexibleRunner.from_cfg(cfg)
    return Runner.from_cfg(cfg)
