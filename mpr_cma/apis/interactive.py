"""Answer one interactive request: media + expression -> answer, mask overlays, attention.

`run_request` never raises for bad input: an empty expression, a missing / unreadable file,
a video over the frame cap, or an expression the prompt cannot hold comes back as a
`Response` with `ok=False` and a message for the page. An answer without `[SEG]` is a
valid answer (`ok=True`) whose masks are empty; its `messages` say so.

Inference is `mpr_cma.models.inference.predict_image` / `predict_video` (Sa2VA's predict
path: greedy answer, `[SEG]` -> SAM-2). For a model with MBA the attention maps are the
Fig. 5 view of `mpr_cma.visualization`: for each MBA pass, the strongest routed text
token's attention at each pixel, without the mask gate (`attn`) and times the gate
(`attn_gated`, what reaches the refined features), laid over the frame. Images get one
pair per `[SEG]` of the answer; videos one pair per frame MBA ran on (Sa2VA's frame rule:
the `[SEG]`-prompted key frames), recorded by hooks on the MBA module.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mpr_cma.apis.media import DEFAULT_MAX_FRAMES, Media, MediaError, read_media
from mpr_cma.models.attention_recording import record_attention

# Sa2VA's generation budget (`preparing_for_generation(max_new_tokens=2048)`).
MAX_NEW_TOKENS = 2048

__all__ = ["MAX_NEW_TOKENS", "RequestError", "Response", "run_request"]

Captioned = tuple[np.ndarray, str]


class RequestError(ValueError):
    """A request that cannot be run (the message is for the page)."""


@dataclass
class Response:
    """What the page shows for one request.

    Attributes:
        ok: False when the request was refused (nothing was computed; see `messages`).
        answer: the model's answer text ("" when refused).
        messages: lines for the page: why a request was refused, or notes on a result
            (an answer without [SEG], a model without MBA).
        overlays: (RGB uint8 (H, W, 3), caption) per frame: the mask over the frame.
        attention: (RGB uint8 (H, W, 3), caption) pairs, "no gate" then "x mask gate", per
            `[SEG]` (image) or per MBA frame (video); empty without MBA.
        masks: (T, H, W) bool, T = 1 for an image; None when refused.
        has_seg: whether the answer prompted SAM-2 (a `[SEG]` it could use).
        is_video: whether the input was a video.
    """

    ok: bool
    answer: str = ""
    messages: list[str] = field(default_factory=list)
    overlays: list[Captioned] = field(default_factory=list)
    attention: list[Captioned] = field(default_factory=list)
    masks: np.ndarray | None = None
    has_seg: bool = False
    is_video: bool = False

    @property
    def message(self) -> str:
        return "\n".join(self.messages)


def refused(message: str) -> Response:
    return Response(ok=False, messages=[message])


def _attention_pair(frame: np.ndarray, info: dict, row: int, label: str) -> list[Captioned]:
    from mpr_cma.visualization import attention_summary_map, overlay_heatmap

    return [(overlay_heatmap(frame, attention_summary_map(info, gated=False, row=row)),
             f"{label}: attention, no gate"),
            (overlay_heatmap(frame, attention_summary_map(info, gated=True, row=row)),
             f"{label}: attention x mask gate")]


def _check_text(text: str | None) -> str:
    if text is None or not text.strip():
        raise RequestError("Type a referring expression or a question first: the text is "
                           "empty.")
    return text


def _run_image(model, media: Media, text: str, answer, max_new_tokens: int,
               max_tiles: int, want_attention: bool) -> Response:
    from PIL import Image

    from mpr_cma.models.inference import predict_image
    from mpr_cma.visualization import overlay_masks

    frame = media.frames[0]
    result = predict_image(model, Image.fromarray(frame), text, max_tiles=max_tiles,
                           answer=answer, max_new_tokens=max_new_tokens,
                           return_attention=want_attention)
    response = Response(ok=True, answer=result["answer"], masks=result["mask"][None],
                        has_seg=result["has_seg"])
    response.overlays = [(overlay_masks(frame, result["mask"]), media.names[0])]
    info = result.get("attention")
    if info is not None:
        for row in range(info["attn"].shape[0]):
            response.attention += _attention_pair(frame, info, row, f"[SEG] {row + 1}")
    return response


def _run_video(model, media: Media, text: str, answer, max_new_tokens: int,
               num_key_frames: int, want_attention: bool) -> Response:
    from contextlib import nullcontext

    from PIL import Image

    from mpr_cma.models.inference import predict_video
    from mpr_cma.visualization import overlay_masks

    recorder = record_attention(model.grounding.mba) if want_attention else nullcontext([])
    with recorder as infos:
        result = predict_video(model, [Image.fromarray(f) for f in media.frames], text,
                               num_key_frames=num_key_frames, answer=answer,
                               max_new_tokens=max_new_tokens)
    response = Response(ok=True, answer=result["answer"], masks=result["masks"],
                        has_seg=result["has_seg"], is_video=True)
    response.overlays = [(overlay_masks(frame, mask), f"frame {name}") for frame, mask, name
                         in zip(media.frames, result["masks"], media.names, strict=True)]
    if want_attention and len(infos) == len(result["mba_frames"]):
        for t, info in zip(result["mba_frames"], infos, strict=True):
            response.attention += _attention_pair(media.frames[t], info, 0,
                                                  f"frame {media.names[t]}")
    return response


def run_request(model, media: str | Path | Media | None, text: str | None, *,
                answer: str | None = None, max_frames: int = DEFAULT_MAX_FRAMES,
                max_new_tokens: int = MAX_NEW_TOKENS, num_key_frames: int | None = None,
                max_tiles: int = 12, attention: bool = True) -> Response:
    """Segment what `text` refers to in an uploaded image or video.

    Args:
        model: `Sa2VAMBA` in eval mode, or an `InferenceModel` (`load_inference_model`).
        media: the upload (a path, decoded by `read_media`) or a decoded `Media`.
        text: the referring expression or question, sent verbatim.
        answer: teacher-forced answer instead of greedy generation (e.g. "It is [SEG].").
        max_frames: the video frame cap (see `mpr_cma.apis.media`).
        max_new_tokens: generation budget (Sa2VA: 2048).
        num_key_frames: video frames shown to the MLLM; None: the `InferenceModel`'s
            (its config's `num_key_frames`), else Sa2VA's 5.
        max_tiles: InternVL image tiles (Sa2VA: 12).
        attention: also draw MBA's attention maps (when the model has MBA).

    Returns:
        a `Response`; bad input is `ok=False` with a message, never an exception.
    """
    import torch

    if num_key_frames is None:
        from mpr_cma.engine.config import SA2VA_NUM_KEY_FRAMES
        num_key_frames = getattr(model, "num_key_frames", SA2VA_NUM_KEY_FRAMES)
    model = getattr(model, "model", model)  # an InferenceModel
    try:
        text = _check_text(text)
        if media is None:
            raise RequestError("Upload an image or a video first.")
        if not isinstance(media, Media):
            media = read_media(media, max_frames=max_frames)
    except (RequestError, MediaError) as err:
        return refused(str(err))
    has_mba = getattr(model.grounding, "mba", None) is not None
    want_attention = attention and has_mba
    try:
        with torch.no_grad():
            if media.is_video:
                response = _run_video(model, media, text, answer, max_new_tokens,
                                      num_key_frames, want_attention)
            else:
                response = _run_image(model, media, text, answer, max_new_tokens, max_tiles,
                                      want_attention)
    except ValueError as err:  # the prompt refuses the expression ("<image>", "[SEG]")
        return refused(f"Cannot run this request: {err}")
    return _annotate(response, has_mba, attention)


def _annotate(response: Response, has_mba: bool, attention: bool) -> Response:
    if not response.has_seg:
        response.messages.append("The answer has no [SEG] token, so the model segmented "
                                 "nothing: the masks are empty.")
    if attention and not has_mba:
        response.messages.append("This model has no MBA (a baseline config): no attention "
                                 "maps to show.")
    return response
