"""Public inference API behind `tools/app.py`: load a checkpoint, read an upload, answer one
request (answer text, mask overlays, MBA attention maps).

- `load_inference_model(config, checkpoint)` (`mpr_cma.apis.model`): the model `tools/test.py`
  evaluates, built and loaded by the same code (every checkpoint kind it takes).
- `read_media(path)` (`mpr_cma.apis.media`): an image or a video file as RGB frames, with a
  frame cap (`DEFAULT_MAX_FRAMES`) and a `MediaError` naming the file for bad uploads.
- `run_request(model, media, text)` (`mpr_cma.apis.interactive`): one request ->
  `Response` (answer, per-frame overlays, attention with and without the mask gate, and a
  message for the page instead of a traceback).

Names are imported on first use, so `import mpr_cma.apis` costs no torch / transformers
import (`tools/app.py --help` answers at once).
"""

from mpr_cma.lazy_exports import lazy_exports

_EXPORTS = {
    "DEFAULT_MAX_FRAMES": "media",
    "IMAGE_SUFFIXES": "media",
    "VIDEO_SUFFIXES": "media",
    "Media": "media",
    "MediaError": "media",
    "VideoTooLongError": "media",
    "read_media": "media",
    "InferenceModel": "model",
    "load_inference_model": "model",
    "RequestError": "interactive",
    "Response": "interactive",
    "run_request": "interactive",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
