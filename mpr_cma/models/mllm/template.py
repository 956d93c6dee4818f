"""Chat template, image placeholders and conversation encoding of Sa2VA-1B.

Sa2VA-1B (InternVL2_5-1B, a Qwen2.5 LLM) trains with xtuner's `qwen_chat` prompt template
and an empty system prompt, and formats its inference prompts with the same template, so a
two-turn referring conversation reads

    <|im_start|>user\\n<img><IMG_CONTEXT>...</img>\\nPlease segment the red car.<|im_end|>\\n
    <|im_start|>assistant\\nIt is [SEG].<|im_end|>\\n
    <|im_start|>user\\nPlease segment the dog.<|im_end|>\\n
    <|im_start|>assistant\\nSure, [SEG].<|im_end|>\\n

(one line per `\\n`-terminated piece above). InternVL2.5's own `chat()` uses the same
format with a system turn, `<|im_start|>system\\n{INTERNVL25_SYSTEM_PROMPT}<|im_end|>\\n`;
pass `system=INTERNVL25_SYSTEM_PROMPT` to reproduce it.

Encoding follows xtuner's `encode_fn` (which Sa2VA's datasets call): every piece is
tokenized on its own without BOS (Qwen has none); only the assistant answers and the
`<|im_end|>` closing them are supervised (the suffix doubles as EOS), every other label is
`IGNORE_INDEX`; the `\\n` separator after an answer is not supervised.

The referring question/answer phrasings are our own, in the spirit of Sa2VA's
SEG_QUESTIONS / ANSWER_LIST. Sa2VA's referring data ask one expression per turn (up to 5
turns per image or video); `multi_object_answer` adds the one-turn form with one `[SEG]`
per object ("[SEG], [SEG] and [SEG].") for multi-target prompts.
"""

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from mpr_cma.models.mllm.tokenizer import (
    IMG_CONTEXT_TOKEN,
    IMG_END_TOKEN,
    IMG_START_TOKEN,
    SA2VA_SPECIAL_TOKENS,
    SEG_TOKEN,
    token_id,
)

IGNORE_INDEX = -100
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

    system: str = "<|im_start|>system\n{system}<|im_end|>\n"
    instruction: str = "<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n"
    suffix: str = "<|im_end|>"
    sep: str = "\n"
    stop_words: tuple[str, ...] = ("<|im_end|>", "<|endoftext|>")


QWEN_CHAT = ChatTemplate()


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


# Referring-segmentation phrasings: our own wording, in the spirit of Sa2VA's lists.
SEG_QUESTIONS = (
    "Please segment {expression} in this image.",
    "Can you segment the {expression} in this image?",
    "Could you give me a segmentation mask of the {expression}?",
    "Where is the {expression}? Please answer with a segmentation mask.",
    "Please find the {expression} and output its mask.",
    "What is {expression} in this image? Please respond with a segmentation mask.",
    "Segment the {expression}.",
    "Show me the mask of the {expression} in this picture.",
)
SEG_ANSWERS = (
    "It is [SEG].",
    "Sure, [SEG].",
    "Sure, it is [SEG].",
    "Here is the mask: [SEG].",
    "[SEG].",
)
MULTI_SEG_ANSWERS = (
    "They are {segs}.",
    "Sure, {segs}.",
    "Here are the masks: {segs}.",
    "{segs}.",
)
# The prompt Sa2VA's RefCOCO and referring-video evaluations send.
INFERENCE_SEG_PROMPT = "<image>\nPlease segment {expression}."


def clean_expression(expression: str) -> str:
    """Lower-case and drop a trailing full stop, as Sa2VA does before filling a template."""
    expression = expression.strip()
    if expression.endswith("."):
        expression = expression[:-1].rstrip()
    return expression.lower()


def referring_question(expression: str, rng: random.Random | None = None) -> str:
    """A segmentation question about `expression`; the first template when rng is None."""
    template = rng.choice(SEG_QUESTIONS) if rng is not None else SEG_QUESTIONS[0]
    return template.format(expression=clean_expression(expression))


def referring_answer(rng: random.Random | None = None) -> str:
    """A one-object answer holding one [SEG]; the first template when rng is None."""
    return rng.choice(SEG_ANSWERS) if rng is not None else SEG_ANSWERS[0]


def multi_object_answer(num_objects: int, rng: random.Random | None = None) -> str:
    """An answer with one [SEG] per object: "[SEG]", "[SEG] and [SEG]", "[SEG], [SEG] and
    [SEG]" ... inside a phrasing (the first one when rng is None)."""
    if num_objects < 1:
        raise ValueError(f"need at least one object, got {num_objects}")
    segs = [SEG_TOKEN] * num_objects
    joined = segs[0] if num_objects == 1 else ", ".join(segs[:-1]) + " and " + segs[-1]
    template = rng.choice(MULTI_SEG_ANSWERS) if rng is not None else MULTI_SEG_ANSWERS[0]
    return template.format(segs=joined)


def multi_object_question(expressions: Sequence[str]) -> str:
    """One question asking for several objects: "Please segment a, b and c in this image."."""
    names = [clean_expression(e) for e in expressions]
    if not names:
        raise ValueError("need at least one expression")
    joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"Please segment {joined} in this image."


def referring_turns(expressions: Iterable[str], rng: random.Random | None = None) -> list[Turn]:
    """Sa2VA's referring conversation: one question/answer turn per expression, `<image>`
    opening the first question; the masks follow the expressions' order."""
    turns = [Turn(referring_question(e, rng), referring_answer(rng)) for e in expressions]
    if not turns:
        raise ValueError("need at least one expression")
    return [Turn(IMAGE_PLACEHOLDER + "\n" + turns[0].question, turns[0].answer), *turns[1:]]
