"""Every read, resolve and strict load of weights: one path for tools/test.py, predict.py,
convert_ckpt.py, the app and the model builders.

- `resolve_checkpoint(path)` (resolve): what a path is - an HF folder in the Sa2VA layout,
  a DeepSpeed checkpoint folder, an mmengine work dir (its latest complete checkpoint) or
  one .pth file.
- `read_checkpoint` (training): a training checkpoint as one CPU state dict (DeepSpeed
  ZeRO 1/2/3, mmengine, plain state dicts); `read_safetensors_folder`, `torch_load` (files).
- `load_checkpoint(model, path)` / `build_and_load(model_cfg, path)` (load): the one strict
  loader. A training checkpoint may lack exactly the frozen parameters that the config's
  pretrained weights provide (DeepSpeed's `exclude_frozen_parameters`); any other missing,
  unexpected or mis-shaped key is a `CheckpointKeyError` listing them with the file.
- errors: `CheckpointKeyError`, `CorruptCheckpointError` (a file that cannot be parsed,
  named).

Names are imported on first use, so importing the package costs no torch import.
"""

from mpr_cma.lazy_exports import lazy_exports

_EXPORTS = {
    "CheckpointKeyError": "errors",
    "CorruptCheckpointError": "errors",
    "INDEX_NAME": "files",
    "MODEL_STATES": "files",
    "WEIGHTS_NAME": "files",
    "read_safetensors_folder": "files",
    "sha256_of_files": "files",
    "torch_load": "files",
    "check_state": "keys",
    "load_strict": "keys",
    "CheckpointInfo": "resolve",
    "is_hf_folder": "resolve",
    "resolve_checkpoint": "resolve",
    "Consolidated": "training",
    "read_checkpoint": "training",
    "summarize_state": "training",
    "LoadResult": "load",
    "build_and_load": "load",
    "build_model": "load",
    "load_checkpoint": "load",
    "load_model_config": "load",
    "pretrained_prefixes": "load",
    "stored_model_config": "load",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
