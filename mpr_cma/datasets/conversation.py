"""Referring-segmentation conversations in Sa2VA's form, with exact expression token spans.

Sa2VA's referring datasets (RefCOCO/+/g, MeViS, ReVOS, Ref-YTVOS) turn the objects of one
image or video into a multi-turn chat: one question per object, each answered with a single
`[SEG]`, the image (or key-frame) placeholder opening the first question,
`num_classes_per_sample` / `select_number` = 5 objects per sample drawn with replacement
(`sample_objects`). Questions and answers
are drawn uniformly from Sa2VA's `SEG_QUESTIONS` / `SEG_ANSWERS`, and the expression is
prepared by the rule of the dataset family (`EXPRESSION_RULES`):

- "refcoco" (`Sa2VA01RefSeg._parse_annotations`): lower-cased, one final "." dropped;
- "refvos" (`Sa2VA03RefVOS.dataset_map_fn`): an expression holding "?" is asked as is, as
  the whole question; otherwise every "." is removed, then it is stripped and lower-cased.

Outer whitespace of an expression is stripped first (annotation text has none; Sa2VA keeps
it in the RefCOCO rule, which only matters for malformed text).

MBA and TMC also need the token span of every object's expression in `input_ids`.
Every template piece is tokenized as a whole, as xtuner does (so the ids are Sa2VA's), with
the tokenizer's character offsets; the span is the tokens covering the expression's
characters, located by private-use markers that are removed before tokenization. A token
that also holds a neighbouring template character (a BPE merge across the boundary) is
part of the span. This needs a fast tokenizer (the InternVL2.5 and the tiny one are).
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
    token_span,
)
from mpr_cma.models.mllm.tokenizer import SEG_TOKEN

# Private-use characters bracketing an expression inside the rendered prompt. They never
# reach the tokenizer: each piece is split at them first. Removed from expressions up front.
_OPEN, _CLOSE = "\ue000", "\ue001"
# Sa2VA: num_classes_per_sample=5 (RefCOCO family), select_number=5 (video datasets).
MAX_OBJECTS = 5
EXPRESSION_RULES = ("refcoco", "refvos")
# How each turn is answered: "sa2va" draws one of Sa2VA's SEG_ANSWERS ("Sure, [SEG]." ...);
# "seg_names_object" (ours, for LLMs trained from random init: the tiny demo) answers
# "[SEG] red circle left of the square." - the expression without its leading article after
# the [SEG], so the LLM loss at [SEG] asks its hidden state, the SAM-2 prompt, to name the
# object. A random-init LLM's [SEG] state otherwise carries nothing of the sentence
# (docs/demo.md "Why the tiny model did not refer"; a pretrained LLM's does).
# "object_then_seg" (ours, the same purpose) names the object first: "red circle left of
# the square [SEG]." - the [SEG] state then sits right after the words it must carry.
ANSWER_STYLES = ("sa2va", "seg_names_object", "object_then_seg")
_ARTICLES = ("the ", "a ", "an ")


@dataclass(frozen=True)
class EncodedConversation:
    """One tokenized referring conversation.

    Attributes:
        input_ids: token ids, length L.
        labels: same length; the answer tokens (and their closing `<|im_end|>`), else
            IGNORE_INDEX.
        expression_spans: one (start, end) per object, end exclusive, in input_ids.
        expressions: the expressions as asked (after the dataset rule), in object order
            (= `[SEG]` order).
    """

    input_ids: list[int]
    labels: list[int]
    expression_spans: list[tuple[int, int]]
    expressions: list[str]


def prepare_expression(expression: str, rule: str) -> tuple[str, bool]:
    """An expression as Sa2VA's dataset of that family asks it.

    Args:
        expression: the annotation text.
        rule: "refcoco" or "refvos" (see the module docstring).

    Returns:
        (text, is_question): the text to put in a question template, or, when is_question,
        the question itself (a Ref-VOS expression holding "?").

    Raises:
        ValueError: an unknown rule, or nothing is left of the expression.
    """
    if rule not in EXPRESSION_RULES:
        raise ValueError(f"expression rule must be one of {EXPRESSION_RULES}, got {rule!r}")
    text = expression.replace(_OPEN, "").replace(_CLOSE, "").strip()
    is_question = rule == "refvos" and "?" in text
    if rule == "refcoco":
        text = text.lower()
        text = text[:-1] if text.endswith(".") else text
    elif not is_question:
        text = text.replace(".", "").strip().lower()
    if not text:
        raise ValueError(f"empty referring expression {expression!r}")
    return text, is_question


def _question(expression: str, is_question: bool, template: str) -> str:
    """The question with the expression bracketed by the markers."""
    if is_question:
        return _OPEN + expression + _CLOSE
    return template.format(expression=_OPEN + expression + _CLOSE)


def _encode_marked(tokenizer: PreTrainedTokenizerBase, text: str,
                   offset: int) -> tuple[list[int], list[tuple[int, int]]]:
    """Tokenize `text` without its markers, as one piece; token spans of the bracketed parts."""
    plain, ranges = "", []
    rest = text
    while _OPEN in rest:
        before, rest = rest.split(_OPEN, 1)
        inside, rest = rest.split(_CLOSE, 1)
        plain += before
        ranges.append((len(plain), len(plain) + len(inside)))
        plain += inside
    plain += rest
    if not ranges:
        return tokenizer.encode(plain, add_special_tokens=False), []
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{type(tokenizer).__name__} is not a fast tokenizer: the expression "
                         "spans need its character offsets")
    enc = tokenizer(plain, add_special_tokens=False, return_offsets_mapping=True)
    spans = [token_span(enc["offset_mapping"], a, b) for a, b in ranges]
    return list(enc["input_ids"]), [(offset + a, offset + b) for a, b in spans]


def seg_answer(expression: str, style: str, rng: random.Random | None) -> str:
    """The answer of one turn in `style` (see ANSWER_STYLES) for a prepared expression.

    Raises:
        ValueError: unknown style.
    """
    if style == "sa2va":
        return rng.choice(SEG_ANSWERS) if rng else SEG_ANSWERS[0]
    if style not in ("seg_names_object", "object_then_seg"):
        raise ValueError(f"answer_style must be one of {ANSWER_STYLES}, got {style!r}")
    name = expression.strip().rstrip(".?! ")
    for article in _ARTICLES:
        if name.lower().startswith(article):
            name = name[len(article):]
            break
    if not name:
        return f"{SEG_TOKEN}."
    return f"{SEG_TOKEN} {name}." if style == "seg_names_object" else f"{name} {SEG_TOKEN}."


def encode_referring(
    tokenizer: PreTrainedTokenizerBase,
    expressions: Sequence[str],
    num_image_tokens: int,
    num_frames: int = 1,
    rng: random.Random | None = None,
    template: ChatTemplate = QWEN_CHAT,
    max_length: int | None = None,
    rule: str = "refcoco",
    answer_style: str = "sa2va",
) -> EncodedConversation:
    """Encode a referring conversation, one question/answer turn per expression.

    Args:
        tokenizer: with Sa2VA's tokens added (`add_special_tokens`); a fast tokenizer.
        expressions: one per object, in object order.
        num_image_tokens: total `<IMG_CONTEXT>` count of the image or key frames (> 0).
        num_frames: > 1 for a video (one single-tile block per key frame).
        rng: picks the question / answer phrasings; None = the first of each.
        template: the chat template (Sa2VA: qwen_chat, no system prompt).
        max_length: fail if longer (the caller drops objects: truncating would cut a
            `[SEG]` or an expression).
        rule: expression rule, "refcoco" (images) or "refvos" (videos); see the module doc.
        answer_style: one of ANSWER_STYLES (Sa2VA: "sa2va").

    Returns:
        `EncodedConversation`; `[SEG]` k of input_ids belongs to expression k.

    Raises:
        ValueError: no expressions, an empty expression, an unknown rule, or the sequence
            exceeds max_length.
    """
    if not expressions:
        raise ValueError("a referring conversation needs at least one expression")
    prepared = [prepare_expression(e, rule) for e in expressions]
    turns = []
    for i, (expression, is_question) in enumerate(prepared):
        phrasing = rng.choice(SEG_QUESTIONS) if rng else SEG_QUESTIONS[0]
        question = _question(expression, is_question, phrasing)
        answer = seg_answer(expression, answer_style, rng)
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
    if input_ids.count(seg_id) != len(prepared) or len(spans) != len(prepared):
        raise ValueError(f"conversation holds {input_ids.count(seg_id)} [SEG] and {len(spans)} "
                         f"expressions for {len(prepared)} objects")
    return EncodedConversation(input_ids, labels, spans, [e for e, _ in prepared])


def encode_referring_fitting(
    tokenizer: PreTrainedTokenizerBase,
    expressions: Sequence[str],
    num_image_tokens: int,
    num_frames: int = 1,
    rng: random.Random | None = None,
    max_length: int | None = None,
    rule: str = "refcoco",
    answer_style: str = "sa2va",
) -> EncodedConversation:
    """`encode_referring` dropping trailing objects until the sequence fits max_length.

    Raises:
        ValueError: even one object does not fit.
    """
    for count in range(len(expressions), 0, -1):
        try:
            return encode_referring(tokenizer, expressions[:count], num_image_tokens,
                                    num_frames, rng, max_length=max_length, rule=rule,
                                    answer_style=answer_style)
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
        replace: Sa2VA's rule (the datasets' default) - always exactly N, drawn with
            replacement; False draws min(N, available) distinct objects.
        rng: the sample's random generator.
    """
    if num_available < 1:
        raise ValueError("no objects to sample from")
    if replace:
        return [rng.randrange(num_available) for _ in range(max_objects)]
    return rng.sample(range(num_available), min(num_available, max_objects))
