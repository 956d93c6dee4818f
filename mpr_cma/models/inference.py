"""Predict path of Sa2VA-MBA: an image or a video and a referring expression -> masks.

It follows Sa2VA's `predict_forward` (`projects/sa2va/hf/models/modeling_sa2va_chat.py`)
and its evaluation scripts (`evaluation/sa2va_eval_refcoco.py`, `sa2va_eval_ref_vos.py`):

- prompt: the evaluation question of Sa2VA's RES.py (images) or refVOS.py (videos) with
  the expression verbatim, wrapped by the chat template's INSTRUCTION and tokenized as one
  text (`encode_prompt`); the expression's tokens (and each `[SEG]`) are the MBA text
  tokens, as in training;
- answer: greedy, up to 2048 new tokens, until `<|im_end|>` / `<|endoftext|>`. Every
  `[SEG]` of the answer prompts SAM-2 (when the budget runs out, Sa2VA's hidden-state
  lookup skips the last generated token, and so do we); an image's mask is the union of
  its `[SEG]` masks (Sa2VA's RefCOCO evaluation; `combine="first"` keeps the first), a
  video's is the first `[SEG]`'s (Sa2VA's Ref-VOS evaluation). An answer without `[SEG]`
  predicts empty masks (reported in the result). `answer=` teacher-forces a fixed answer
  instead (e.g. "It is [SEG]." for a quick check of an untrained model);
- images: InternVL dynamic tiles (1-12 + thumbnail) for the MLLM, the whole image for
  SAM-2 (PIL bicubic resize to S x S, bf16 normalisation);
- videos: the first `num_key_frames` frames (5, one tile each) for the MLLM, every frame
  for SAM-2 under the grounding model's `video_prompt` rule (Sa2VA's: those key frames are
  prompted without memory, the others tracked by memory alone);
- masks: logits resized 4h x 4w -> S x S -> H x W (bilinear), kept where sigmoid > 0.5;
- encodings (`EncodedInput`): InternViT runs once per input, its tokens shared by
  generation and the teacher-forced [SEG] pass; `predict_image_sentences` also shares
  them, and SAM-2's image features, among the expressions asked about one image (RefCOCO
  evaluation). A video's SAM-2 features stay per expression (memory is per object).
"""

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from mpr_cma.models.grounding.lazy_video import LazyVideoFeatures
from mpr_cma.models.grounding.transforms import logits_to_masks
from mpr_cma.models.mllm.preprocess import (
    ImageInput,
    load_frame_pixels,
    load_image_tiles,
    open_image,
    select_key_frames,
)
from mpr_cma.models.mllm.template import inference_prompt, token_span
from mpr_cma.models.mllm.tokenizer import ENDOFTEXT_TOKEN, IM_END_TOKEN, SEG_TOKEN, token_id

# Sa2VA's `preparing_for_generation(max_new_tokens=2048)`, which its evaluations keep.
MAX_NEW_TOKENS = 2048
COMBINE_RULES = ("union", "first")
# How predict_video encodes the SAM-2 frames: "lazy" (each frame when SAM-2 visits it, as
# SAM-2's video predictor does: memory flat in the number of frames) or "batched" (all
# frames in one encoder call, as Sa2VA's predict_forward; memory grows with T).
VIDEO_ENCODINGS = ("lazy", "batched")


def encode_prompt(tokenizer, expression: str, num_image_tokens: int, num_frames: int = 1,
                  video: bool = False) -> tuple[list[int], tuple[int, int]]:
    """Token ids of Sa2VA's inference prompt and the (start, end) token span of the expression.

    The prompt (`template.inference_prompt`) is tokenized as one text, as `predict_forward`
    does; the span is the tokens covering the expression's characters (fast tokenizers).

    Raises:
        ValueError: a blank expression, one holding `<image>` or `[SEG]`, or a tokenizer
            without character offsets.
    """
    text, (start, end) = inference_prompt(expression, num_image_tokens, num_frames, video)
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{type(tokenizer).__name__} is not a fast tokenizer: the expression "
                         "span needs its character offsets")
    enc = tokenizer(text, return_offsets_mapping=True)
    span = token_span(enc["offset_mapping"], start, end)
    ids = list(enc["input_ids"])
    seg = token_id(tokenizer, SEG_TOKEN)
    if seg is not None and seg in ids:
        raise ValueError(f"the referring expression holds [SEG]: {expression!r}")
    return ids, span


@torch.no_grad()
def greedy_answer(model, input_ids: Tensor, vision_embeds: Tensor,
                  max_new_tokens: int = MAX_NEW_TOKENS) -> tuple[list[int], bool]:
    """Greedy decoding with the KV cache until `<|im_end|>` / `<|endoftext|>`.

    Args:
        model: Sa2VAMBA. input_ids: (1, L).
        vision_embeds: (T, n, H_llm) `model.mllm.extract_feature` of the T tiles (encoded
            by the caller, who reuses them for the teacher-forced [SEG] pass).

    Returns:
        (generated token ids without the stop token, whether a stop token ended it).
    """
    llm = model.mllm.language_model
    stops = {token_id(model.tokenizer, t) for t in (IM_END_TOKEN, ENDOFTEXT_TOKEN)}
    embeds = model.mllm.embed_inputs(input_ids, vision_embeds=vision_embeds)
    out = llm(inputs_embeds=embeds, use_cache=True, return_dict=True)
    generated: list[int] = []
    for _ in range(max_new_tokens):
        next_id = int(out.logits[0, -1].argmax())
        if next_id in stops:
            return generated, True
        generated.append(next_id)
        step = torch.tensor([[next_id]], device=input_ids.device)
        out = llm(input_ids=step, past_key_values=out.past_key_values, use_cache=True,
                  return_dict=True)
    return generated, False


def seg_indices(generated: Sequence[int], seg_token_id: int, stopped: bool = True) -> list[int]:
    """Positions of the answer's `[SEG]` tokens whose hidden states prompt SAM-2.

    Sa2VA reads them off `generate`'s sequence without its last token (the stop token, or,
    when the budget ran out, the last generated one), so a `[SEG]` generated last before
    the budget ends is not used.
    """
    usable = list(generated) if stopped else list(generated)[:-1]
    return [i for i, t in enumerate(usable) if t == seg_token_id]


def _to_uint8_tensor(images: Sequence[ImageInput]) -> tuple[Tensor, tuple[int, int]]:
    """Frames -> (F, 3, H, W) uint8 tensor and their common (H, W)."""
    arrays = [np.asarray(open_image(img)) for img in images]
    sizes = {a.shape[:2] for a in arrays}
    if len(sizes) != 1:
        raise ValueError(f"all frames must have the same size, got {sorted(sizes)}")
    stacked = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return stacked, arrays[0].shape[:2]


class EncodedInput:
    """The expensive encodings of one input, each computed on first use, then shared.

    predict_image_sentences asks many expressions about one image: the InternViT tokens of
    its tiles and SAM-2's image features are the same for every one, so they are encoded
    once (and not at all when no expression needs them: a forced answer without [SEG]).
    A video's SAM-2 features are not kept here (memory is per object, `_ground`).

    Args:
        model: Sa2VAMBA. pixel_values: (T, 3, s, s) MLLM tiles (any float dtype).
        frames: images: (1, 3, H, W) uint8 for SAM-2; videos: an (F, 3, H, W) uint8 tensor
            (batched encoding) or (load_frame, F) (lazy encoding).
    """

    def __init__(self, model, pixel_values: Tensor, frames: Tensor | tuple) -> None:
        self.model, self.frames = model, frames
        self.device = next(model.parameters()).device
        self.pixel_values = pixel_values.to(self.device,
                                            next(model.mllm.mlp1.parameters()).dtype)
        self._vision: Tensor | None = None
        self._image_features = None

    @property
    def num_tiles(self) -> int:
        return self.pixel_values.shape[0]

    def vision(self) -> Tensor:
        """(T, n, H_llm) vision tokens (`InternVLChatModel.extract_feature`)."""
        if self._vision is None:
            self._vision = self.model.mllm.extract_feature(self.pixel_values)
        return self._vision

    def image_features(self):
        """SAM-2's `GroundingFeatures` of the image (image inputs only)."""
        if self._image_features is None:
            grounding = self.model.grounding
            self._image_features = grounding.encode(
                grounding.preprocess(self.frames, video=False).to(self.device))
        return self._image_features


@torch.no_grad()
def _ground(model, expression: str, encoded: EncodedInput, num_frames_llm: int,
            answer: str | None, max_new_tokens: int, video: bool,
            return_attention: bool = False) -> dict:
    """MLLM answer, then SAM-2 per `[SEG]` (images: every one; videos: the first)."""
    device = encoded.device
    num_tokens = encoded.num_tiles * model.mllm.num_image_token
    ids, span = encode_prompt(model.tokenizer, expression, num_tokens, num_frames_llm, video)
    input_ids = torch.tensor([ids], device=device)
    # The ViT runs once per input: generation and the teacher-forced pass (and, for an
    # image, every expression asked about it) share its tokens.
    if answer is None:
        new, stopped = greedy_answer(model, input_ids, encoded.vision(), max_new_tokens)
    else:
        new, stopped = model.tokenizer.encode(answer, add_special_tokens=False), True
    text = model.tokenizer.decode(new)
    segs = seg_indices(new, model.seg_token_id, stopped)
    if not segs:
        return {"answer": text, "has_seg": False, "num_seg": 0}
    segs = segs[:1] if video else segs
    # Teacher-forced pass over prompt + answer up to the last [SEG] used: causal, so these
    # are the hidden states generation saw. That prefix holds exactly the used [SEG]s (all
    # of them, or a video's first) and the prompt none (`encode_prompt`).
    full = torch.tensor([ids + new[: segs[-1] + 1]], device=device)
    out = model.mllm(full, vision_embeds=encoded.vision(), output_hidden_states=True)
    text_in = model.object_text(out.hidden_states[-1], full, [len(segs)], [[span] * len(segs)])
    grounding = model.grounding
    args = (text_in["prompt"], text_in["text"], text_in["text_mask"])
    result = {"answer": text, "has_seg": True, "num_seg": len(segs)}
    if video:
        frames = encoded.frames
        keys, prompt_tracked = grounding.video_plan(list(range(num_frames_llm)))
        if isinstance(frames, Tensor):   # every frame encoded in one batch (Sa2VA)
            features = grounding.encode(grounding.preprocess(frames, video=True).to(device))
        else:                            # (load_frame, T): each frame when visited
            load_frame, num_frames = frames
            features = LazyVideoFeatures(grounding, load_frame, num_frames, keep=keys,
                                         device=device)
        seg = grounding.segment_video(features, *args[:1], keys, *args[1:],
                                      prompt_tracked=prompt_tracked)
        return {**result, "low_res_logits": seg["pred_masks"][0], "prompted": seg["prompted"],
                "mba_frames": seg["mba_frames"]}
    index = torch.zeros(len(segs), dtype=torch.long, device=device)
    want = return_attention and grounding.mba is not None
    seg = grounding.segment_images(encoded.image_features(), index, *args,
                                   return_attention=want)
    result["low_res_logits"] = seg["pred_masks"][:, 0]
    if want:
        result["attention"] = {k: v.detach().cpu() for k, v in seg["attention"].items()}
    return result


def predict_image(model, image: ImageInput, expression: str, max_tiles: int = 12,
                  answer: str | None = None, max_new_tokens: int = MAX_NEW_TOKENS,
                  return_attention: bool = False, combine: str = "union") -> dict:
    """Segment the object an expression refers to in one image.

    Args:
        model: Sa2VAMBA (eval mode is set here).
        image: PIL image or image path.
        expression: the referring expression (non-empty), sent verbatim.
        max_tiles: most InternVL dynamic tiles (12, Sa2VA's; a thumbnail is added when
            there is more than one tile).
        answer: teacher-forced answer instead of greedy generation.
        max_new_tokens: generation budget (Sa2VA: 2048).
        return_attention: also return MBA's attention info (CPU tensors, see
            `MaskBiasedAttention`; "attn" and "attn_gated" are (n, heads, h, w, K) for the
            n `[SEG]` of the answer) under "attention", when the model has MBA.
        combine: "union" (Sa2VA's RefCOCO evaluation: the union of the masks of every
            `[SEG]`) or "first" (the first `[SEG]`'s mask).

    Returns:
        {"mask": (H, W) bool numpy, "logits": (H, W) fp32 tensor or None (the maximum over
         the combined `[SEG]`s: sigmoid > 0.5 of it is the mask), "answer": str,
         "has_seg": bool, "num_seg": int[, "attention": dict]}; without `[SEG]` the mask is
         empty.
    """
    return predict_image_sentences(model, image, [expression], max_tiles=max_tiles,
                                   answer=answer, max_new_tokens=max_new_tokens,
                                   return_attention=return_attention, combine=combine)[0]


def predict_image_sentences(model, image: ImageInput, expressions: Sequence[str],
                            max_tiles: int = 12, answer: str | None = None,
                            max_new_tokens: int = MAX_NEW_TOKENS,
                            return_attention: bool = False,
                            combine: str = "union") -> list[dict]:
    """`predict_image` for several expressions about one image, encoding the image once.

    The InternViT tiles and SAM-2's image features are computed once and shared (they do
    not depend on the expression); each expression still gets its own answer, teacher-
    forced pass and mask decoding, so every result is bit-identical to
    `predict_image(model, image, expression, ...)` (tests/models/test_inference_encoding.py).

    Args:
        expressions: referring expressions about `image` (empty: no result, no encoding).
        the others: as `predict_image`.

    Returns:
        One `predict_image` result per expression, in order.
    """
    if combine not in COMBINE_RULES:
        raise ValueError(f"combine must be one of {COMBINE_RULES}, got {combine!r}")
    model.eval()
    if not expressions:
        return []
    tiles = load_image_tiles(image, max_num=max_tiles,
                             image_size=model.mllm.vision_model.image_size)
    frames, (h, w) = _to_uint8_tensor([image])
    encoded = EncodedInput(model, tiles, frames)
    results = []
    for expression in expressions:
        out = _ground(model, expression, encoded, 1, answer, max_new_tokens, video=False,
                      return_attention=return_attention)
        results.append(_image_result(model, out, (h, w), combine))
    return results


def _image_result(model, out: dict, size: tuple[int, int], combine: str) -> dict:
    """`_ground`'s image output -> predict_image's result (masks at the image's size)."""
    if not out["has_seg"]:
        return {**out, "mask": np.zeros(size, dtype=bool), "logits": None}
    low_res = out.pop("low_res_logits")  # (n, 4h, 4w), one row per [SEG]
    low_res = low_res[:1] if combine == "first" else low_res
    logits = model.grounding.upsample_masks(low_res[None], size)[0].amax(0)
    return {**out, "mask": logits_to_masks(logits).cpu().numpy(), "logits": logits.cpu()}


def predict_video(model, frames: Sequence[ImageInput], expression: str,
                  num_key_frames: int = 5, answer: str | None = None,
                  max_new_tokens: int = MAX_NEW_TOKENS, encoding: str = "lazy") -> dict:
    """Segment the referred object in every frame of a video.

    Args:
        model: Sa2VAMBA. frames: the video's frames in order (PIL images or paths).
        expression: the referring expression, sent verbatim (refVOS.py's question form
            when it holds "?"). num_key_frames: frames shown to the MLLM (the first ones,
            Sa2VA: 5). answer, max_new_tokens: as `predict_image`.
        encoding: "lazy" (default: SAM-2 encodes a frame when it is visited, frames are
            read then, and masks are upsampled frame by frame: peak memory flat in T) or
            "batched" (Sa2VA's: every frame at once). Both give the same masks
            (tests/models/test_lazy_video.py).

    Returns:
        {"masks": (T, H, W) bool numpy, "answer": str, "has_seg": bool, "num_seg": int,
         "prompted": frames decoded with the [SEG] prompt, "mba_frames": frames MBA ran
         on, in its order} (the last two empty without `[SEG]`).
    """
    if encoding not in VIDEO_ENCODINGS:
        raise ValueError(f"encoding must be one of {VIDEO_ENCODINGS}, got {encoding!r}")
    model.eval()
    if not frames:
        raise ValueError("the video has no frames")
    key = select_key_frames(len(frames), num_key_frames, "first")
    pixels = load_frame_pixels([frames[i] for i in key], model.mllm.vision_model.image_size)
    if encoding == "batched":
        source, (h, w) = _to_uint8_tensor(frames)
    else:
        h, w = _to_uint8_tensor(frames[:1])[1]

        def load_frame(t: int) -> Tensor:
            stacked, size = _to_uint8_tensor([frames[t]])
            if size != (h, w):
                raise ValueError(f"all frames must have the same size: frame {t} is {size}, "
                                 f"frame 0 {(h, w)}")
            return stacked

        source = (load_frame, len(frames))
    out = _ground(model, expression, EncodedInput(model, pixels, source), len(key), answer,
                  max_new_tokens, video=True)
    if not out["has_seg"]:
        return {**out, "masks": np.zeros((len(frames), h, w), dtype=bool), "prompted": [],
                "mba_frames": []}
    low_res = out.pop("low_res_logits")   # (T, 4h, 4w)
    if encoding == "batched":
        logits = model.grounding.upsample_masks(low_res[None], (h, w))[0]
        return {**out, "masks": logits_to_masks(logits).cpu().numpy()}
    masks = np.zeros((len(frames), h, w), dtype=bool)
    for t in range(len(frames)):   # one S x S upsampling at a time
        logits = model.grounding.upsample_masks(low_res[None, t : t + 1], (h, w))[0, 0]
        masks[t] = logits_to_masks(logits).cpu().numpy()
    return {**out, "masks": masks}
