"""Training hooks: warm-up of MBA's gate and of the auxiliary losses; method statistics.

Paper 4.1: the first 5% of the iterations ramp the learning rate, the auxiliary losses and
the MBA gate. `WarmupHook` sets, before every iteration i of N,

    scale(i) = min(1, (i + 1) / int(ratio * N))     (1 when int(ratio * N) = 0)

on every module with `set_warmup_scale` (MaskBiasedAttention / MaskBiasedFiLM: gamma's
multiplier) and `set_aux_warmup_scale` (MPRCMALoss: TMC and boundary weights). The scale
depends on `runner.iter` only, so a resumed run continues the same ramp. `TrainStatsHook`
puts gamma, the scales, the gradient norm and the throughput into the message hub, where
the LoggerHook picks them up with the losses and the learning rate.
"""

import time

from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from torch import nn

from mpr_cma.registry import HOOKS


def unwrap_model(model) -> nn.Module:
    """The user model inside DDP / DeepSpeed engine / mmengine's DeepSpeed wrapper."""
    while True:
        inner = getattr(model, "model", None) if not isinstance(model, nn.Module) else None
        if inner is not None:  # MMDeepSpeedEngineWrapper (not an nn.Module)
            model = inner
        elif isinstance(getattr(model, "module", None), nn.Module):  # DDP, DeepSpeedEngine
            model = model.module
        else:
            return model


def linear_warmup_scale(iteration: int, max_iters: int, ratio: float) -> float:
    """Scale of 0-based `iteration` for a linear ramp over the first `ratio` of `max_iters`."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"warm-up ratio must be in [0, 1], got {ratio}")
    # Whole iterations, as mmengine converts the LR warm-up's epoch bound (int): the
    # ramps reach 1 on the iteration where the LR warm-up ends (configs: one warmup_ratio).
    warmup_iters = int(ratio * max_iters)
    if warmup_iters <= 0:
        return 1.0
    return min(1.0, (iteration + 1) / warmup_iters)


@HOOKS.register_module()
class WarmupHook(Hook):
    """Linear warm-up of MBA's gamma and of the auxiliary (TMC, boundary) loss weights.

    Args:
        mba_warmup_ratio: fraction of the iterations ramping modules with
            `set_warmup_scale` (paper: 0.05).
        aux_warmup_ratio: fraction ramping modules with `set_aux_warmup_scale` (0.05).
    """

    priority = "ABOVE_NORMAL"

    def __init__(self, mba_warmup_ratio: float = 0.05, aux_warmup_ratio: float = 0.05):
        for name, ratio in (("mba_warmup_ratio", mba_warmup_ratio),
                            ("aux_warmup_ratio", aux_warmup_ratio)):
            if not 0.0 <= ratio <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {ratio}")
        self.mba_warmup_ratio = mba_warmup_ratio
        self.aux_warmup_ratio = aux_warmup_ratio

    def apply(self, model: nn.Module, iteration: int, max_iters: int) -> dict[str, float]:
        """Set the scales of `model`'s modules for `iteration`; returns them."""
        mba = linear_warmup_scale(iteration, max_iters, self.mba_warmup_ratio)
        aux = linear_warmup_scale(iteration, max_iters, self.aux_warmup_ratio)
        for module in unwrap_model(model).modules():
            if hasattr(module, "set_warmup_scale"):
                module.set_warmup_scale(mba)
            if hasattr(module, "set_aux_warmup_scale"):
                module.set_aux_warmup_scale(aux)
        return {"mba_warmup": mba, "aux_warmup": aux}

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        scales = self.apply(runner.model, runner.iter, runner.max_iters)
        for name, value in scales.items():
            runner.message_hub.update_scalar(f"train/{name}", value)

    def after_train(self, runner) -> None:
        # Evaluation after training uses the full gate and weights.
        self.apply(runner.model, runner.max_iters, runner.max_iters)


@HOOKS.register_module()
class TrainStatsHook(Hook):
    """Logs MBA's gamma, DeepSpeed's global grad norm and samples per second."""

    priority = "BELOW_NORMAL"

    def __init__(self):
        self._start = None

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        hub = runner.message_hub
        gated = [m for m in unwrap_model(runner.model).modules()
                 if hasattr(m, "set_warmup_scale") and hasattr(m, "gamma")]
        for i, module in enumerate(gated):
            gamma = module.gamma.detach().float()
            hub.update_scalar("train/gamma" + (f"_{i}" if i else ""), gamma.abs().mean().item())
        get_norm = getattr(runner.model, "get_global_grad_norm", None)
        norm = get_norm() if callable(get_norm) else None
        if norm is not None:
            hub.update_scalar("train/grad_norm", float(norm))
        if self._start is not None:
            batch = _batch_size(data_batch)
            if batch:
                elapsed = max(time.perf_counter() - self._start, 1e-9)
                hub.update_scalar("train/samples_per_s", batch * get_world_size() / elapsed)


def _batch_size(data_batch) -> int:
    data = data_batch.get("data", data_batch) if isinstance(data_batch, dict) else None
    ids = data.get("input_ids") if isinstance(data, dict) else None
    return int(ids.shape[0]) if ids is not None else 0
