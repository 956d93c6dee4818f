"""Referring-segmentation conversations with exact expression token spans.

Sa2VA's referring datasets (RefCOCO/+/g, MeViS, ReVOS, Ref-YTVOS) turn the objects of one
image or video into a multi-turn chat: one question per object, each answered with a single
`[SEG]`, the image (or key-frame) placeholder opening the first question, at most
`num_classes_per_sample` / `select_number` = 5 objects per sample. MBA and TMC also need
the token span of every object's expression in `input_ids`. Searching the expression's
tokens in the prompt is fragile (a word can repeat, BPE merges depend on context), so the
span is known by construction: every question is tokenized in three pieces - the text before
the expression, the expression (with its leading space), the text after it - and the span is
the middle piece's position. The pieces split at spaces or punctuation, which the Qwen2
pre-tokenizer splits at anyway, so the ids equal those of tokenizing the whole question.

A ReVOS-style expression that is itself a question (it holds "?") is asked as is, as Sa2VA
does; its span is then the whole question.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from mpr_cma.models.mllm.template import (
    IGNORE_INDEX,
    IMAGE_PLACEHOLDER,
    QWEN_CHAT,
    SEG_ANSWERS,
    SEG_QUESTIONS,
    ChatTemplate,
    Turn,
    build_conversation,
    clean_expression,
)
from mpr_cma.models.mllm.tokenizer import SEG_TOKEN

# Private-use characters bracketing an expression inside the rendered prompt. They never
# reach the tokenizer: each piece is split at them first. Removed from expressions up front.
_OPEN, _CLOSE = "\ue000", "\ue001"
# Sa2VA: num_classes_per_sample=5 (RefCOCO family), select_number=5 (video datasets).
MAX_OBJECTS = 5


@dataclass(frozen=True)
class EncodedConversation:
    """One tokenized referring conversation.

    Attributes:
        input_ids: token ids, length L.
        labels: same length; the answer tokens (and their closing `<|im_end|>`), else
            IGNORE_INDEX.
        expression_spans: one (start, end) per object, end exclusive, in input_ids.
        expressions: the cleaned expressions, in object order (= `[SEG]` order).
    """

    input_ids: list[int]
    labels: list[int]
    expression_spans: list[tuple[int, int]]
    expressions: list[str]


def _question(expression: str, template: str) -> str:
    """The question with the expression bracketed by the markers, its leading space inside."""
    if "?" in expression:
        return _OPEN + expression + _CLOSE
    marked = template.format(expression=_OPEN + clean_expression(expression) + _CLOSE)
    return marked.replace(" " + _OPEN, _OPEN + " ")


def _encode_marked(tokenizer: PreTrainedTokenizerBase, text: str,
                   offset: int) -> tuple[list[int], list[tuple[int, int]]]:
    """Tokenize `text` piecewise at the markers; spans of the bracketed parts."""
    ids: list[int] = []
    spans = []
    rest = text
    while _OPEN in rest:
        before, rest = rest.split(_OPEN, 1)
        inside, rest = rest.split(_CLOSE, 1)
        ids += tokenizer.encode(before, add_special_tokens=False)
        start = offset + len(ids)
        ids += tokenizer.encode(inside, add_special_tokens=False)
        spans.append((start, offset + len(ids)))
    ids += tokenizer.encode(rest, add_special_tokens=False)
    return ids, spans


def encode_referring(
    tokenizer: PreTrainedTokenizerBase,
    expressions: Sequence[str],
    num_image_tokens: int,
    num_frames: int = 1,
    rng: random.Random | None = None,
    template: ChatTemplate = QWEN_CHAT,
    max_length: int | None = None,
) -> EncodedConversation:
    """Encode a referring conversation, one question/answer turn per expression.

    Args:
        tokenizer: with Sa2VA's tokens added (`add_special_tokens`).
        expressions: one per object, in object order.
        num_image_tokens: total `<IMG_CONTEXT>` count of the image or key frames (> 0).
        num_frames: > 1 for a video (one single-tile block per key frame).
        rng: picks the question / answer phrasings; None = the first of each.
        template: the chat template (Sa2VA: qwen_chat, no system prompt).
        max_length: fail if longer (the caller drops objects: truncating would cut a
            `[SEG]` or an expression).

    Returns:
        `EncodedConversation`; `[SEG]` k of input_ids belongs to expression k.

    Raises:
        ValueError: no expressions, an empty expression, or the sequence exceeds max_length.
    """
    if not expressions:
        raise ValueError("a referring conversation needs at least one expression")
    cleaned = [" ".join(e.replace(_OPEN, "").replace(_CLOSE, "").split()) for e in expressions]
    if not all(cleaned):
        raise ValueError(f"empty referring expression in {list(expressions)!r}")
    turns = []
    for i, expression in enumerate(cleaned):
        question = _question(expression, rng.choice(SEG_QUESTIONS) if rng else SEG_QUESTIONS[0])
        answer = rng.choice(SEG_ANSWERS) if rng else SEG_ANSWERS[0]
        turns.append(Turn((IMAGE_PLACEHOLDER + "\n" if i == 0 else "") + question, answer))
    pieces = build_conversation(turns, num_image_tokens, num_frames, template=template)
    input_ids: list[int] = []
    labels: list[int] = []
    spans: list[tuple[int, int]] = []
    for text, supervised in pieces:
        ids, found = _encode_marked(tokenizer, text, len(input_ids))
        spans += found
        input_ids += ids
        labels += ids if supervised else [IGNORE_INDEX] * len(ids)
    if max_length is not None and len(input_ids) > max_length:
        raise ValueError(f"{len(expressions)}-object conversation has {len(input_ids)} tokens "
                         f"> max_length {max_length}")
    seg_id = tokenizer.convert_tokens_to_ids(SEG_TOKEN)
    if input_ids.count(seg_id) != len(cleaned) or len(spans) != len(cleaned):
        raise ValueError(f"conversation holds {input_ids.count(seg_id)} [SEG] and {len(spans)} "
                         f"expressions for {len(cleaned)} objects")
    used = [clean_expression(e) if "?" not in e else e for e in cleaned]
    return EncodedConversation(input_ids, labels, spans, used)


def encode_referring_fitting(
    tokenizer: PreTrainedTokenizerBase,
    expressions: Sequence[str],
    num_image_tokens: int,
    num_frames: int = 1,
    rng: random.Random | None = None,
    max_length: int | None = None,
) -> EncodedConversation:
    """`encode_referring` dropping trailing objects until the sequence fits max_length.

    Raises:
        ValueError: even one object does not fit.
    """
    for count in range(len(expressions), 0, -1):
        try:
            return encode_referring(tokenizer, expressions[:count], num_image_tokens,
                                    num_frames, rng, max_length=max_length)
        except ValueError:
            if count == 1:
                raise
    raise ValueError("a referring conversation needs at least one expression")


def sample_objects(num_available: int, max_objects: int, replace: bool,
                   rng: random.Random) -> list[int]:
    """Indices of the objects of one sample.

    Args:
        num_available: objects (refs or expressions) of the image / video.
        max_objects: N.
        replace: Sa2VA's rule - always exactly N, drawn with replacement; False (default
            of the datasets here) draws min(N, available) distinct objects.
        rng: the sample's random generator.
    """
    if num_available < 1:
        raise ValueError("no objects to sample from")
    if replace:
        return [rng.randrange(num_available) for _ in range(max_objects)]
    return rng.sample(range(num_available), min(num_available, max_objects))
