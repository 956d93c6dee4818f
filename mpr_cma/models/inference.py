"""Predict path of Sa2VA-MBA: an image or a video and a referring expression -> masks.

As Sa2VA's `predict_forward`: the expression goes into the inference prompt
("<image>\\nPlease segment {expression}."), the LLM answers greedily, and the hidden
state of the first `[SEG]` of the answer prompts SAM-2. The expression's own tokens (and
the `[SEG]`) are the MBA text tokens, exactly as in training. A model that answers without
`[SEG]` predicts an empty mask (reported in the result). `answer=` teacher-forces a fixed
answer instead of generating (e.g. "It is [SEG]." for a quick check of an untrained model).

Images: InternVL dynamic tiles for the MLLM, the full frame resized to S x S for SAM-2,
masks upsampled back to the original size. Videos: the first `num_key_frames` frames (one
tile each) for the MLLM (Sa2VA's inference), every frame for SAM-2 with its memory.
"""

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from mpr_cma.models.mllm.preprocess import (
    ImageInput,
    load_frame_pixels,
    load_image_tiles,
    open_image,
    select_key_frames,
)
from mpr_cma.models.mllm.template import (
    INFERENCE_SEG_PROMPT,
    build_conversation,
    clean_expression,
)
from mpr_cma.models.mllm.tokenizer import ENDOFTEXT_TOKEN, IM_END_TOKEN, token_id


def encode_prompt(tokenizer, expression: str, num_image_tokens: int,
                  num_frames: int = 1) -> tuple[list[int], tuple[int, int]]:
    """Token ids of the inference prompt and the (start, end) span of the expression.

    The rendered prompt is split around the expression and each piece is tokenized on its
    own (the expression with its leading space), so the span is exact by construction; the
    expression is cleaned as in training (`clean_expression`: lower case, no final stop).
    """
    expression = clean_expression(" ".join(expression.split()))
    if not expression:
        raise ValueError("the referring expression is empty")
    question = INFERENCE_SEG_PROMPT.format(expression=expression)
    (text, _), = build_conversation([(question, None)], num_image_tokens, num_frames)
    cut = text.rindex(" " + expression)
    pieces = [text[:cut], " " + expression, text[cut + len(expression) + 1:]]
    ids = [tokenizer.encode(p, add_special_tokens=False) for p in pieces]
    start = len(ids[0])
    return ids[0] + ids[1] + ids[2], (start, start + len(ids[1]))


@torch.no_grad()
def greedy_answer(model, input_ids: Tensor, pixel_values: Tensor,
                  max_new_tokens: int = 32) -> list[int]:
    """Greedy decoding with the KV cache until `<|im_end|>` / `<|endoftext|>`.

    Args:
        model: Sa2VAMBA. input_ids: (1, L). pixel_values: (T, 3, s, s).

    Returns:
        the generated token ids (stop token excluded).
    """
    llm = model.mllm.language_model
    stops = {token_id(model.tokenizer, t) for t in (IM_END_TOKEN, ENDOFTEXT_TOKEN)}
    embeds = model.mllm.embed_inputs(input_ids, pixel_values)
    out = llm(inputs_embeds=embeds, use_cache=True, return_dict=True)
    generated: list[int] = []
    for _ in range(max_new_tokens):
        next_id = int(out.logits[0, -1].argmax())
        if next_id in stops:
            break
        generated.append(next_id)
        step = torch.tensor([[next_id]], device=input_ids.device)
        out = llm(input_ids=step, past_key_values=out.past_key_values, use_cache=True,
                  return_dict=True)
    return generated


def _to_uint8_tensor(images: Sequence[ImageInput]) -> tuple[Tensor, tuple[int, int]]:
    """Frames -> (F, 3, H, W) uint8 tensor and their common (H, W)."""
    arrays = [np.asarray(open_image(img)) for img in images]
    sizes = {a.shape[:2] for a in arrays}
    if len(sizes) != 1:
        raise ValueError(f"all frames must have the same size, got {sorted(sizes)}")
    stacked = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return stacked, arrays[0].shape[:2]


@torch.no_grad()
def _ground(model, expression: str, pixel_values: Tensor, num_frames_llm: int,
            frames: Tensor, answer: str | None, max_new_tokens: int, video: bool,
            return_attention: bool = False) -> dict:
    device = next(model.parameters()).device
    num_tokens = pixel_values.shape[0] * model.mllm.num_image_token
    ids, span = encode_prompt(model.tokenizer, expression, num_tokens, num_frames_llm)
    input_ids = torch.tensor([ids], device=device)
    pixel_values = pixel_values.to(device, next(model.mllm.mlp1.parameters()).dtype)
    if answer is None:
        new = greedy_answer(model, input_ids, pixel_values, max_new_tokens)
    else:
        new = model.tokenizer.encode(answer, add_special_tokens=False)
    text = model.tokenizer.decode(new)
    if model.seg_token_id not in new:
        return {"answer": text, "has_seg": False}
    # Teacher-forced pass over prompt + answer up to the first [SEG]: causal, so these are
    # the hidden states generation saw.
    full = torch.tensor([ids + new[: new.index(model.seg_token_id) + 1]], device=device)
    out = model.mllm(full, pixel_values, output_hidden_states=True)
    text_in = model.object_text(out.hidden_states[-1], full, [1], [[span]])
    grounding = model.grounding
    features = grounding.encode(grounding.preprocess(frames.to(device)))
    args = (text_in["prompt"], text_in["text"], text_in["text_mask"])
    if video:
        logits = grounding.segment_video(features, *args[:1], [0], *args[1:])["pred_masks"][0]
    else:
        index = torch.zeros(1, dtype=torch.long, device=device)
        want = return_attention and grounding.mba is not None
        out = grounding.segment_images(features, index, *args, return_attention=want)
        logits = out["pred_masks"][:, 0]
        if want:
            return {"answer": text, "has_seg": True, "low_res_logits": logits,
                    "attention": {k: v.detach().cpu() for k, v in out["attention"].items()}}
    return {"answer": text, "has_seg": True, "low_res_logits": logits}


def predict_image(model, image: ImageInput, expression: str, max_tiles: int = 12,
                  answer: str | None = None, max_new_tokens: int = 32,
                  return_attention: bool = False) -> dict:
    """Segment the object an expression refers to in one image.

    Args:
        model: Sa2VAMBA (eval mode is set here).
        image: PIL image or image path.
        expression: the referring expression (non-empty).
        max_tiles: most InternVL dynamic tiles (12, InternVL's default; a thumbnail is
            added when there is more than one tile).
        answer: teacher-forced answer instead of greedy generation.
        max_new_tokens: generation budget.
        return_attention: also return MBA's attention info (CPU tensors, see
            `MaskBiasedAttention`; "attn" and "attn_gated" are (1, heads, h, w, K)) under
            "attention", when the model has MBA and the answer has `[SEG]`.

    Returns:
        {"mask": (H, W) bool numpy, "logits": (H, W) fp32 tensor or None, "answer": str,
         "has_seg": bool[, "attention": dict]}; without `[SEG]` the mask is empty.
    """
    model.eval()
    tiles = load_image_tiles(image, max_num=max_tiles,
                             image_size=model.mllm.vision_model.image_size)
    frames, (h, w) = _to_uint8_tensor([image])
    out = _ground(model, expression, tiles, 1, frames, answer, max_new_tokens, video=False,
                  return_attention=return_attention)
    if not out["has_seg"]:
        return {**out, "mask": np.zeros((h, w), dtype=bool), "logits": None}
    logits = model.grounding.upsample_masks(out.pop("low_res_logits")[None], (h, w))[0, 0]
    return {**out, "mask": (logits > 0).cpu().numpy(), "logits": logits.cpu()}


def predict_video(model, frames: Sequence[ImageInput], expression: str,
                  num_key_frames: int = 5, answer: str | None = None,
                  max_new_tokens: int = 32) -> dict:
    """Segment the referred object in every frame of a video.

    Args:
        model: Sa2VAMBA. frames: the video's frames in order (PIL images or paths).
        expression: the referring expression. num_key_frames: frames shown to the MLLM
            (the first ones, as Sa2VA's inference). answer, max_new_tokens: as predict_image.

    Returns:
        {"masks": (T, H, W) bool numpy, "answer": str, "has_seg": bool}.
    """
    model.eval()
    if not frames:
        raise ValueError("the video has no frames")
    key = select_key_frames(len(frames), num_key_frames, "first")
    pixels = load_frame_pixels([frames[i] for i in key], model.mllm.vision_model.image_size)
    stacked, (h, w) = _to_uint8_tensor(frames)
    out = _ground(model, expression, pixels, len(key), stacked, answer, max_new_tokens,
                  video=True)
    if not out["has_seg"]:
        return {**out, "masks": np.zeros((len(frames), h, w), dtype=bool)}
    logits = model.grounding.upsample_masks(out.pop("low_res_logits")[None], (h, w))[0]
    return {**out, "masks": (logits > 0).cpu().numpy()}
