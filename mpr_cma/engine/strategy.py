"""DeepSpeed strategy for mmengine's FlexibleRunner: ZeRO-2 on GPU (nccl) and CPU (gloo).

`AtomicDeepSpeedStrategy` is mmengine 0.10's DeepSpeedStrategy with four fixes:
- its constructor registered DeepSpeed's 1-bit optimizers, which DeepSpeed >= 0.17 no
  longer ships (ModuleNotFoundError); here only the optimizers that exist are registered;
- `inputs_to_half` casts floating-point tensors only (mmengine's cast also turned
  `input_ids` into bf16), so `inputs_to_half=['data']` feeds bf16 images to a bf16 model;
- the process group is created without `torch.cuda.set_device` when there is no GPU;
- checkpoints are published atomically and carry every rank's RNG state
  (`mpr_cma.engine.checkpoint`);
- the `before_save_checkpoint` / `after_load_checkpoint` hook callbacks are called
  (mmengine's version ignores them).
"""

import torch
from mmengine._strategy.base import BaseStrategy
from mmengine._strategy.deepspeed import DeepSpeedStrategy, MMDeepSpeedEngineWrapper
from mmengine.dist import get_rank, get_world_size, is_main_process
from mmengine.logging import print_log
from mmengine.registry import MODEL_WRAPPERS, OPTIMIZERS, STRATEGIES
from mmengine.utils import apply_to

from mpr_cma.engine.checkpoint import (
    PARTIAL_SUFFIX,
    barrier,
    gather_rng_states,
    is_complete_checkpoint,
    publish,
    remove_path,
    restore_rng_state,
)


def register_deepspeed_optimizers() -> list[str]:
    """Register DeepSpeed's CPU Adam and fused Adam/Lamb (those present) as optimizers."""
    from deepspeed.ops.adam import DeepSpeedCPUAdam, FusedAdam
    from deepspeed.ops.lamb import FusedLamb

    names = []
    for cls in (DeepSpeedCPUAdam, FusedAdam, FusedLamb):
        if OPTIMIZERS.get(cls.__name__) is None:
            OPTIMIZERS.register_module(module=cls)
        names.append(cls.__name__)
    return names


@MODEL_WRAPPERS.register_module()
class FloatInputsDeepSpeedWrapper(MMDeepSpeedEngineWrapper):
    """mmengine's DeepSpeed engine wrapper casting only floating-point inputs to half."""

    def _cast_inputs_half(self, inputs):
        if self._inputs_to_half is None:
            return inputs
        dtype = next(self.model.parameters()).dtype

        def cast(value):
            return apply_to(value, lambda x: torch.is_tensor(x) and x.is_floating_point(),
                            lambda x: x.to(dtype))

        if isinstance(inputs, dict):
            return {k: cast(v) if k in self._inputs_to_half else v for k, v in inputs.items()}
        if isinstance(inputs, (list, tuple)):
            return type(inputs)(cast(v) if i in self._inputs_to_half else v
                                for i, v in enumerate(inputs))
        raise TypeError(f"inputs should be a list, tuple or dict, got {type(inputs)}")


@STRATEGIES.register_module()
class AtomicDeepSpeedStrategy(DeepSpeedStrategy):
    """DeepSpeedStrategy with atomic checkpoints, RNG states, hook callbacks, CPU support.

    Args:
        config: DeepSpeed config dict or json path; the keyword arguments below override it.
        zero_optimization, gradient_clipping, fp16, bf16, amp, activation_checkpointing,
            aio, train_micro_batch_size_per_gpu, gradient_accumulation_steps,
            steps_per_print: DeepSpeed config entries (https://www.deepspeed.ai/docs/config-json/).
        inputs_to_half: inputs cast to the half dtype (mmengine's meaning).
        exclude_frozen_parameters: leave frozen parameters out of checkpoints.
        **kwargs: BaseStrategy arguments (work_dir, env_kwargs, randomness, ...).
    """

    def __init__(self, *, config=None, zero_optimization=None, gradient_clipping=None,
                 fp16=None, inputs_to_half=None, bf16=None, amp=None,
                 activation_checkpointing=None, aio=None, train_micro_batch_size_per_gpu=None,
                 gradient_accumulation_steps=None, steps_per_print: int = 10**13,
                 exclude_frozen_parameters=None, **kwargs):
        BaseStrategy.__init__(self, **kwargs)  # DeepSpeedStrategy.__init__ fails, see above
        self.config = self._parse_config(config)
        entries = dict(zero_optimization=zero_optimization, gradient_clipping=gradient_clipping,
                       fp16=fp16, bf16=bf16, amp=amp,
                       activation_checkpointing=activation_checkpointing, aio=aio,
                       train_micro_batch_size_per_gpu=train_micro_batch_size_per_gpu,
                       gradient_accumulation_steps=gradient_accumulation_steps)
        self.config.update({k: v for k, v in entries.items() if v is not None})
        self.config.setdefault("gradient_accumulation_steps", 1)
        self.config["steps_per_print"] = steps_per_print
        self._inputs_to_half = inputs_to_half
        self.exclude_frozen_parameters = exclude_frozen_parameters
        register_deepspeed_optimizers()

    def _wrap_model(self, model: torch.nn.Module) -> FloatInputsDeepSpeedWrapper:
        import deepspeed

        if hasattr(self, "optim_wrapper"):
            engine, self.optim_wrapper.optimizer, *_ = deepspeed.initialize(
                model=model, optimizer=self.optim_wrapper.optimizer, config=self.config)
        else:
            engine, *_ = deepspeed.initialize(model=model, config=self.config)
        return FloatInputsDeepSpeedWrapper(model=engine, inputs_to_half=self._inputs_to_half)

    def _setup_distributed(self, launcher: str | None = None, backend: str = "nccl",
                           **kwargs) -> None:
        """mmengine calls `torch.cuda.set_device` unconditionally; skip it on CPU."""
        if torch.cuda.is_available() or launcher != "pytorch":
            super()._setup_distributed(launcher, backend, **kwargs)
            return
        import deepspeed

        deepspeed.init_distributed(dist_backend=backend, **kwargs)

    def save_checkpoint(self, filename: str, *, save_optimizer: bool = True,
                        save_param_scheduler: bool = True, extra_ckpt: dict | None = None,
                        callback=None) -> None:
        """Save to `filename + '.partial'`, then publish it as `filename` (all ranks)."""
        extra_ckpt = {} if extra_ckpt is None else extra_ckpt
        extra_ckpt.setdefault("meta", {})
        if callback is not None:
            callback(extra_ckpt)
        extra_ckpt["meta"]["rng_states"] = gather_rng_states()
        partial = filename + PARTIAL_SUFFIX
        if is_main_process():
            remove_path(partial)
        barrier()
        super().save_checkpoint(partial, save_optimizer=save_optimizer,
                                save_param_scheduler=save_param_scheduler,
                                extra_ckpt=extra_ckpt)
        barrier()
        if is_main_process():
            publish(partial, filename)
        barrier()

    def resume(self, filename: str, *, resume_optimizer: bool = True,
               resume_param_scheduler: bool = True, map_location="default",
               callback=None) -> dict:
        """DeepSpeedStrategy.resume, then the hooks, then this rank's RNG state."""
        if not is_complete_checkpoint(filename):
            raise FileNotFoundError(f"not a complete checkpoint: {filename}")
        checkpoint = super().resume(filename, resume_optimizer=resume_optimizer,
                                    resume_param_scheduler=resume_param_scheduler)
        if callback is not None:
            callback(checkpoint)
        states = checkpoint["meta"].get("rng_states")
        if states and len(states) == get_world_size():
            restore_rng_state(states[get_rank()])
        else:
            print_log(f"RNG states not restored: the checkpoint holds {len(states or [])} "
                      f"ranks, this run has {get_world_size()}", logger="current")
        return checkpoint
