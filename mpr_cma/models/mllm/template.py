"""Chat template, image placeholders, conversation encoding and prompts of Sa2VA-1B.

Sa2VA-1B (InternVL2_5-1B, a Qwen2.5 LLM) trains with xtuner's `qwen_chat` prompt template
and an empty system prompt, and formats its inference prompts with the same template. A
two-turn RefCOCO training conversation (Sa2VA's `Sa2VA01RefSeg`: questions drawn from
`SEG_QUESTIONS`, answers from `SEG_ANSWERS`) reads

    <|im_start|>user\\n<img><IMG_CONTEXT>...</img>\\nPlease segment the red car in this
    image.<|im_end|>\\n<|im_start|>assistant\\nIt is [SEG].<|im_end|>\\n
    <|im_start|>user\\nCan you segment the dog in this image?<|im_end|>\\n
    <|im_start|>assistant\\nSure, [SEG].<|im_end|>\\n

The inference prompts are those of Sa2VA's evaluation datasets
(`projects/sa2va/evaluation/dataset/RES.py`, `refVOS.py`), the expression inserted
verbatim, wrapped by the template's INSTRUCTION only, as `predict_forward` does:

    RefCOCO/+/g: <|im_start|>user\\n<img>...</img>\\n Please segment {expression} in this
                 image.<|im_end|>\\n<|im_start|>assistant\\n
    video:       <|im_start|>user\\n<img>...</img>\\n<img>...</img>\\n...Please segment
                 {expression}.<|im_end|>\\n<|im_start|>assistant\\n
    video, "?" in the expression: ...</img>\\n {expression} Please respond with a
                 segmentation mask.<|im_end|>\\n<|im_start|>assistant\\n

InternVL2.5's own `chat()` uses the same format with a system turn,
`<|im_start|>system\\n{INTERNVL25_SYSTEM_PROMPT}<|im_end|>\\n`; pass
`system=INTERNVL25_SYSTEM_PROMPT` to reproduce it.

The template's strings are xtuner's `PROMPT_TEMPLATE.qwen_chat` (read from xtuner, not
copied). The encoding is ours: xtuner's `encode_fn` takes LLaVA's single `<image>` token
(IMAGE_TOKEN_INDEX) and returns no character spans, while InternVL expands images into
`<IMG_CONTEXT>` text and TMC needs the expression's token span. It follows `encode_fn`
(which Sa2VA's datasets call): every piece is
tokenized on its own without BOS (Qwen has none); only the assistant answers and the
`<|im_end|>` closing them are supervised (the suffix doubles as EOS), every other label is
`IGNORE_INDEX`; the `\\n` separator after an answer is not supervised.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase
from xtuner.utils import IGNORE_INDEX, PROMPT_TEMPLATE

from mpr_cma.models.mllm.tokenizer import (
    IMG_CONTEXT_TOKEN,
    IMG_END_TOKEN,
    IMG_START_TOKEN,
    SA2VA_SPECIAL_TOKENS,
    token_id,
)

# IGNORE_INDEX (-100, the label of unsupervised tokens) is xtuner's, imported above.
IMAGE_PLACEHOLDER = "<image>"
# 448 px tile -> 32 x 32 ViT patches -> pixel shuffle 0.5 -> 16 x 16 = 256 LLM tokens.
TOKENS_PER_TILE = 256

# InternVL2.5's default system message (conversation template 'internvl2_5'). Sa2VA does not
# use it: its datasets set an empty system and its predict_forward formats INSTRUCTION only.
INTERNVL25_SYSTEM_PROMPT = (
    "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的"
    "多模态大语言模型。"
)


@dataclass(frozen=True)
class ChatTemplate:
    """A prompt template in xtuner's form (fields SYSTEM, INSTRUCTION, SUFFIX, SEP).

    Attributes:
        system: wraps a non-empty system prompt, prepended to the first turn.
        instruction: wraps the user text and opens the assistant turn.
        suffix: closes each answer; supervised, and it is the EOS of the turn.
        sep: follows each answer, not supervised.
        stop_words: generation stops at any of these.
    """

    system: str
    instruction: str
    suffix: str = ""
    sep: str = ""
    stop_words: tuple[str, ...] = ()

    @classmethod
    def from_xtuner(cls, template: dict) -> "ChatTemplate":
        """The template of one of xtuner's `PROMPT_TEMPLATE` entries (a dict of SYSTEM,
        INSTRUCTION, SUFFIX, SEP, STOP_WORDS).

        Raises:
            ValueError: SUFFIX_AS_EOS is False (the encoding supervises the suffix as EOS).
        """
        if not template.get("SUFFIX_AS_EOS", True):
            raise ValueError("xtuner template with SUFFIX_AS_EOS=False is not supported: the "
                             "encoding supervises the suffix as the turn's EOS")
        return cls(system=template["SYSTEM"], instruction=template["INSTRUCTION"],
                   suffix=template.get("SUFFIX", ""), sep=template.get("SEP", ""),
                   stop_words=tuple(template.get("STOP_WORDS", ())))


# Sa2VA-1B's template (its configs: `prompt_template = PROMPT_TEMPLATE.qwen_chat`).
QWEN_CHAT = ChatTemplate.from_xtuner(PROMPT_TEMPLATE.qwen_chat)


@dataclass(frozen=True)
class Turn:
    """One user question and the assistant's answer (None: the answer is to be generated;
    only the last turn may leave it open)."""

    question: str
    answer: str | None = None


def image_placeholder(num_tiles: int, tokens_per_tile: int = TOKENS_PER_TILE) -> str:
    """Text standing for one image: `<img>` + num_tiles * tokens_per_tile `<IMG_CONTEXT>` +
    `</img>` (all tiles of a dynamically tiled image share one `<img>` block)."""
    if num_tiles < 1 or tokens_per_tile < 1:
        raise ValueError(f"need num_tiles >= 1 and tokens_per_tile >= 1, got {num_tiles}, "
                         f"{tokens_per_tile}")
    return IMG_START_TOKEN + IMG_CONTEXT_TOKEN * (num_tiles * tokens_per_tile) + IMG_END_TOKEN


def video_placeholder(num_frames: int, tokens_per_frame: int = TOKENS_PER_TILE) -> str:
    """Text standing for the key frames of a video: one single-tile `<img>` block per
    frame, joined by newlines (as Sa2VA's video datasets and predict_forward do)."""
    if num_frames < 1:
        raise ValueError(f"need num_frames >= 1, got {num_frames}")
    return "\n".join([image_placeholder(1, tokens_per_frame)] * num_frames)


def turns_from_llava(conversations: Sequence[dict]) -> list[Turn]:
    """LLaVA-style messages ({"from": "human"|"gpt", "value": ...}) -> turns.

    Leading assistant messages are dropped and consecutive human messages are joined, as in
    Sa2VA; answers are stripped. A trailing human message becomes an open turn.

    Raises:
        ValueError: a message has another role.
    """
    turns, pending = [], ""
    messages = list(conversations)
    while messages and messages[0]["from"] == "gpt":
        messages.pop(0)
    for msg in messages:
        if msg["from"] == "human":
            pending += msg["value"]
        elif msg["from"] == "gpt":
            turns.append(Turn(pending, msg["value"].strip()))
            pending = ""
        else:
            raise ValueError(f"unknown role {msg['from']!r} (expected 'human' or 'gpt')")
    if pending:
        turns.append(Turn(pending))
    return turns


def _insert_image(question: str, num_image_tokens: int, num_frames: int) -> str:
    """Replace `<image>` in the first question by the image (or key-frame) placeholder."""
    count = question.count(IMAGE_PLACEHOLDER)
    if num_image_tokens == 0:
        return question.replace(IMAGE_PLACEHOLDER, "")
    if num_image_tokens % num_frames != 0:
        raise ValueError(f"{num_image_tokens} image tokens do not split into {num_frames} frames")
    if count > 1:
        raise ValueError(f"the first question holds {count} '<image>' placeholders, expected 1")
    if count == 0:
        # InternVL's chat() puts the image first when the question does not place it.
        question = IMAGE_PLACEHOLDER + "\n" + question
    if num_frames == 1:
        placeholder = image_placeholder(1, num_image_tokens)
    else:
        placeholder = video_placeholder(num_frames, num_image_tokens // num_frames)
    return question.replace(IMAGE_PLACEHOLDER, placeholder).strip()


def build_conversation(
    turns: Sequence[Turn | tuple[str, str | None]],
    num_image_tokens: int = 0,
    num_frames: int = 1,
    system: str = "",
    template: ChatTemplate = QWEN_CHAT,
) -> list[tuple[str, bool]]:
    """Lay a conversation out as template pieces, each flagged supervised or not.

    Args:
        turns: `Turn`s or (question, answer) pairs; the first question may hold `<image>`.
        num_image_tokens: total `<IMG_CONTEXT>` count (tiles x 256 for an image, frames x
            256 for a video); 0 for text only, which removes any `<image>`.
        num_frames: > 1 lays the tokens out as that many single-tile frames.
        system: system prompt; "" (Sa2VA's) leaves the system turn out.
        template: the prompt template.

    Returns:
        [(text, supervised)]; "".join of the texts is the full prompt.

    Raises:
        ValueError: no turns, an open turn before the last, `<image>` after the first turn
            of a conversation with an image.
    """
    turns = [t if isinstance(t, Turn) else Turn(*t) for t in turns]
    if not turns:
        raise ValueError("a conversation needs at least one turn")
    pieces: list[tuple[str, bool]] = []
    for i, turn in enumerate(turns):
        question = turn.question
        if i == 0:
            question = _insert_image(question, num_image_tokens, num_frames)
        elif not num_image_tokens:
            question = question.replace(IMAGE_PLACEHOLDER, "")
        elif IMAGE_PLACEHOLDER in question:
            raise ValueError(f"'<image>' may only appear in the first question (turn {i})")
        prefix = template.system.format(system=system) if i == 0 and system else ""
        pieces.append((prefix + template.instruction.format(input=question), False))
        if turn.answer is None:
            if i != len(turns) - 1:
                raise ValueError(f"turn {i} has no answer but is not the last turn")
            continue
        pieces.append((turn.answer + template.suffix, True))
        pieces.append((template.sep, False))
    return pieces


def render_conversation(
    turns: Sequence[Turn | tuple[str, str | None]],
    num_image_tokens: int = 0,
    num_frames: int = 1,
    system: str = "",
    template: ChatTemplate = QWEN_CHAT,
) -> str:
    """The full prompt text of `build_conversation` (same arguments)."""
    pieces = build_conversation(turns, num_image_tokens, num_frames, system, template)
    return "".join(text for text, _ in pieces)


def encode_conversation(
    tokenizer: PreTrainedTokenizerBase,
    turns: Sequence[Turn | tuple[str, str | None]],
    num_image_tokens: int = 0,
    num_frames: int = 1,
    system: str = "",
    template: ChatTemplate = QWEN_CHAT,
    max_length: int | None = None,
) -> dict[str, list[int]]:
    """Tokenize a conversation into input_ids and labels (answers supervised only).

    Args:
        tokenizer: with Sa2VA's tokens added (`add_special_tokens`) when answers hold them.
        turns, num_image_tokens, num_frames, system, template: as in `build_conversation`.
        max_length: truncate longer sequences (xtuner's behaviour), but never inside the
            image tokens.

    Returns:
        {"input_ids": [L], "labels": [L]}; labels are the input ids on the answer tokens
        (incl. each closing `<|im_end|>`) and IGNORE_INDEX elsewhere.

    Raises:
        ValueError: a special token used in the text is not a single token of the tokenizer
            (e.g. `[SEG]` before `add_special_tokens`), or truncation would cut image tokens.
    """
    pieces = build_conversation(turns, num_image_tokens, num_frames, system, template)
    text = "".join(t for t, _ in pieces)
    needed = [tok for tok in (*SA2VA_SPECIAL_TOKENS, IMG_START_TOKEN, IMG_END_TOKEN) if tok in text]
    needed += [IMG_CONTEXT_TOKEN] if num_image_tokens else []
    missing = [tok for tok in needed if token_id(tokenizer, tok) is None]
    if missing:
        raise ValueError(f"tokens {missing} are not in the tokenizer: call add_special_tokens")
    input_ids: list[int] = []
    labels: list[int] = []
    for piece, supervised in pieces:
        ids = tokenizer.encode(piece, add_special_tokens=False)
        input_ids += ids
        labels += ids if supervised else [IGNORE_INDEX] * len(ids)
    if max_length is not None and len(input_ids) > max_length:
        context_id = token_id(tokenizer, IMG_CONTEXT_TOKEN)
        if num_image_tokens and input_ids[max_length:].count(context_id):
            raise ValueError(f"max_length {max_length} would cut the image tokens of a "
                             f"{len(input_ids)}-token conversation")
        input_ids, labels = input_ids[:max_length], labels[:max_length]
    return {"input_ids": input_ids, "labels": labels}


# Sa2VA's referring question and answer lists (`projects/sa2va/datasets/common.py`,
# SEG_QUESTIONS and ANSWER_LIST, from GLaMM), drawn uniformly per turn; duplicates are kept
# because they weight the draw.
SEG_QUESTIONS = (
    "Can you segment the {expression} in this image?",
    "Please segment {expression} in this image.",
    "What is {expression} in this image? Please respond with segmentation mask.",
    "What is {expression} in this image? Please output segmentation mask.",
    "Can you segment the {expression} in this image?",
    "Please segment {expression} in this image.",
    "What is {expression} in this image? Please respond with segmentation mask?",
    "What is {expression} in this image? Please output segmentation mask?",
    "Could you provide a segmentation mask for the {expression} in this image?",
    "Please identify and segment the {expression} in this image.",
    "Where is the {expression} in this picture? Please respond with a segmentation mask.",
    "Can you highlight the {expression} in this image with a segmentation mask?",
    "Could you provide a segmentation mask for the {expression} in this image?",
    "Please identify and segment the {expression} in this image.",
    "Where is the {expression} in this picture? Please respond with a segmentation mask.",
    "Can you highlight the {expression} in this image with a segmentation mask?",
)
SEG_ANSWERS = (
    "It is [SEG].",
    "Sure, [SEG].",
    "Sure, it is [SEG].",
    "Sure, the segmentation result is [SEG].",
    "[SEG].",
)
# The questions of Sa2VA's evaluations: RefCOCO/+/g (RES.py) and referring video
# (refVOS.py: SEG_PROMPT, and SEG_PROMPT_QUESTION for an expression holding "?").
IMAGE_SEG_PROMPT = "<image>\n Please segment {expression} in this image."
VIDEO_SEG_PROMPT = "<image>\nPlease segment {expression}."
VIDEO_QUESTION_PROMPT = "<image>\n {expression} Please respond with a segmentation mask."


def inference_question(expression: str, video: bool) -> str:
    """The template of Sa2VA's evaluation question for an expression (still with
    `{expression}`): RES.py's for images, refVOS.py's for videos (its question form when the
    expression holds "?")."""
    if not video:
        return IMAGE_SEG_PROMPT
    return VIDEO_QUESTION_PROMPT if "?" in expression else VIDEO_SEG_PROMPT


def inference_prompt(expression: str, num_image_tokens: int, num_frames: int = 1,
                     video: bool = False,
                     template: ChatTemplate = QWEN_CHAT) -> tuple[str, tuple[int, int]]:
    """The full inference prompt of Sa2VA's `predict_forward` and the expression's place in it.

    The expression goes in verbatim (Sa2VA's evaluations neither lower-case nor strip it);
    `<image>` becomes the image block (all tiles in one `<img>` block) or one single-tile
    block per key frame joined by newlines, and the question is wrapped by the template's
    INSTRUCTION only (no system turn), exactly as `predict_forward` builds `input_text`.

    Args:
        expression: the referring expression (non-blank, without `<image>`).
        num_image_tokens: total `<IMG_CONTEXT>` count (tiles x 256, or frames x 256).
        num_frames: key frames of a video (their tokens split evenly), 1 for an image.
        video: use the video question (refVOS.py) instead of the image one (RES.py).
        template: the chat template.

    Returns:
        (text, (start, end)): the prompt and the character range of the expression in it.

    Raises:
        ValueError: a blank expression, one holding `<image>`, or tokens that do not split
            into the frames.
    """
    if not expression.strip():
        raise ValueError("the referring expression is empty")
    if IMAGE_PLACEHOLDER in expression:
        raise ValueError(f"the referring expression holds {IMAGE_PLACEHOLDER!r}: {expression!r}")
    if num_image_tokens < 1 or num_image_tokens % num_frames != 0:
        raise ValueError(f"{num_image_tokens} image tokens do not split into {num_frames} frames")
    if num_frames == 1:
        block = image_placeholder(1, num_image_tokens)
    else:
        block = video_placeholder(num_frames, num_image_tokens // num_frames)
    head, tail = inference_question(expression, video).split("{expression}")
    head, tail = head.replace(IMAGE_PLACEHOLDER, block), tail.replace(IMAGE_PLACEHOLDER, block)
    before, after = template.instruction.split("{input}")
    start = len(before) + len(head)
    text = before + head + expression + tail + after
    return text, (start, start + len(expression))


def token_span(offsets: Sequence[tuple[int, int]], start: int, end: int) -> tuple[int, int]:
    """Tokens (start, end exclusive) covering the characters [start, end) of a text.

    Args:
        offsets: per token, its (char_start, char_end) in the text, as a fast tokenizer's
            `return_offsets_mapping` gives them.
        start, end: the character range (non-empty).

    Returns:
        The first and one past the last token overlapping the range; a token that also
        holds a neighbouring character (a BPE merge across the boundary) is included.

    Raises:
        ValueError: no token overlaps the range.
    """
    inside = [i for i, (a, b) in enumerate(offsets) if a < end and b > start and b > a]
    if not inside:
        raise ValueError(f"no token covers characters [{start}, {end})")
    return inside[0], inside[-1] + 1
