"""Load a config and a checkpoint into a model ready for interactive inference.

The model is built and loaded by `mpr_cma.engine.evaluate.build_eval_model`, the code of
`tools/test.py`, so the app takes every checkpoint kind the evaluation takes
(`mpr_cma.checkpoint.resolve_checkpoint`): an HF folder in the Sa2VA layout, a DeepSpeed
checkpoint folder of our training or its work dir (the latest complete checkpoint), or an
mmengine / torch .pth file; loading is strict (`mpr_cma.checkpoint`), and `cfg_options`
(`--cfg-options`, e.g. `mba.use_mask_gate=False`) override config fields first.
"""

from dataclasses import dataclass
from pathlib import Path

__all__ = ["InferenceModel", "load_inference_model"]


@dataclass
class InferenceModel:
    """A loaded model and what it was loaded from.

    Attributes:
        model: `Sa2VAMBA` in eval mode on its device.
        config: the config file.
        checkpoint: the resolved checkpoint path (None: the config's random init).
        checkpoint_kind: "hf", "deepspeed", "pth" or None.
        device: the model's device, e.g. "cpu" or "cuda:0".
        num_key_frames: the config's `num_key_frames` (video frames shown to the MLLM;
            Sa2VA's 5 unless the config sets it), the default of `run_request`.
    """

    model: object
    config: str
    checkpoint: str | None
    checkpoint_kind: str | None
    device: str
    num_key_frames: int = 5

    @property
    def has_mba(self) -> bool:
        """Whether the model has Mask-Biased Attention (attention maps to show)."""
        return getattr(self.model.grounding, "mba", None) is not None

    def describe(self) -> str:
        """One line for the page: config, checkpoint (kind), device."""
        ckpt = (f"{self.checkpoint} ({self.checkpoint_kind})" if self.checkpoint
                else "random init (no checkpoint)")
        mba = "MBA" if self.has_mba else "no MBA (baseline)"
        return f"{Path(self.config).name}, {ckpt}, {mba}, on {self.device}"


def load_inference_model(config: str | Path, checkpoint: str | Path | None,
                         device: str | None = None,
                         cfg_options: dict | list[str] | None = None) -> InferenceModel:
    """Build `config`'s model and load `checkpoint` strictly, as `tools/test.py` does.

    Args:
        config: mmengine config file (e.g. configs/mba_1b.py, configs/tiny/demo.py).
        checkpoint: HF folder, DeepSpeed folder / training work dir, or .pth file; None
            keeps the random init (smoke tests only).
        device: "cpu", "cuda", "cuda:1", ...; None: CUDA when usable (LOCAL_RANK), else CPU.
        cfg_options: config overrides ("key=value" strings or {key: value}).

    Raises:
        FileNotFoundError, CorruptCheckpointError, CheckpointKeyError,
        ConfigReferenceError: as `tools/test.py` (each message names the file or the key).
        ValueError: the config's num_key_frames is not a positive integer.
    """
    import torch

    from mpr_cma.engine.config import config_num_key_frames, load_config
    from mpr_cma.engine.evaluate import build_eval_model, eval_device

    # Read first: a bad num_key_frames is refused before minutes of model building.
    num_key_frames = config_num_key_frames(
        load_config(config, cfg_options, import_custom_modules=False), config)
    target = torch.device(device) if device else eval_device()
    model, info = build_eval_model(config, checkpoint, target, cfg_options=cfg_options)
    return InferenceModel(model, str(config), info["checkpoint"], info["checkpoint_kind"],
                          str(target), num_key_frames)
