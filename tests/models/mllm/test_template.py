"""Sa2VA-1B's chat template, image placeholders and supervised-label layout."""

import pytest

from mpr_cma.models.mllm.template import (
    IGNORE_INDEX,
    INTERNVL25_SYSTEM_PROMPT,
    QWEN_CHAT,
    SEG_ANSWERS,
    SEG_QUESTIONS,
    ChatTemplate,
    Turn,
    build_conversation,
    encode_conversation,
    image_placeholder,
    inference_prompt,
    render_conversation,
    token_span,
    turns_from_llava,
    video_placeholder,
)
from mpr_cma.models.mllm.tokenizer import add_special_tokens, load_tokenizer, tiny_tokenizer_path

TWO_TURNS = [
    Turn("<image>\nPlease segment the red car.", "It is [SEG]."),
    Turn("Please segment the dog.", "Sure, [SEG]."),
]
CTX = "<IMG_CONTEXT>"


@pytest.fixture(scope="module")
def tok():
    tokenizer = load_tokenizer(tiny_tokenizer_path())
    add_special_tokens(tokenizer)
    return tokenizer


def test_two_turn_string_matches_hand_written():
    expected = (
        "<|im_start|>user\n<img><IMG_CONTEXT><IMG_CONTEXT></img>\nPlease segment the red car."
        "<|im_end|>\n<|im_start|>assistant\nIt is [SEG].<|im_end|>\n"
        "<|im_start|>user\nPlease segment the dog.<|im_end|>\n"
        "<|im_start|>assistant\nSure, [SEG].<|im_end|>\n"
    )
    assert render_conversation(TWO_TURNS, num_image_tokens=2) == expected


def test_system_prompt_and_generation_prompt():
    text = render_conversation([Turn("Hi?")], system="Be brief.")
    assert text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi?<|im_end|>\n" \
        "<|im_start|>assistant\n"
    assert INTERNVL25_SYSTEM_PROMPT == (
        "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。"
    )
    assert QWEN_CHAT.stop_words == ("<|im_end|>", "<|endoftext|>")


def test_qwen_chat_is_xtuners_and_suffix_as_eos_is_required():
    from xtuner.utils import PROMPT_TEMPLATE

    xt = PROMPT_TEMPLATE.qwen_chat
    assert (QWEN_CHAT.system, QWEN_CHAT.instruction, QWEN_CHAT.suffix, QWEN_CHAT.sep) == (
        xt.SYSTEM, xt.INSTRUCTION, xt.SUFFIX, xt.SEP)
    with pytest.raises(ValueError, match="SUFFIX_AS_EOS"):
        ChatTemplate.from_xtuner(dict(xt, SUFFIX_AS_EOS=False))


@pytest.mark.parametrize("tiles,per_tile", [(1, 256), (3, 256), (13, 256), (2, 4)])
def test_image_placeholder_count(tiles, per_tile):
    text = image_placeholder(tiles, per_tile)
    assert text.startswith("<img>") and text.endswith("</img>")
    assert text.count(CTX) == tiles * per_tile and text.count("<img>") == 1


def test_video_placeholder_one_block_per_frame():
    text = video_placeholder(5, 3)
    blocks = text.split("\n")
    assert len(blocks) == 5 and all(b == "<img>" + CTX * 3 + "</img>" for b in blocks)
    conv = render_conversation([Turn("<image>\nPlease segment the cat.", "[SEG].")], 15, 5)
    assert conv.startswith("<|im_start|>user\n" + text + "\nPlease segment the cat.<|im_end|>")


def test_image_placement_rules():
    # No <image> in the question: the image goes first (InternVL's chat()).
    assert render_conversation([Turn("Hi", "Yo")], 1).startswith("<|im_start|>user\n<img>")
    # Text only: <image> is dropped.
    assert CTX not in render_conversation([Turn("<image>\nHi", "Yo")], 0)
    with pytest.raises(ValueError, match="first question"):
        build_conversation([Turn("a", "b"), Turn("<image> c", "d")], 4)
    with pytest.raises(ValueError, match="2 '<image>'"):
        build_conversation([Turn("<image><image>", "b")], 4)
    with pytest.raises(ValueError, match="not the last"):
        build_conversation([Turn("a"), Turn("b", "c")])
    with pytest.raises(ValueError, match="frames"):
        build_conversation([Turn("<image>a", "b")], 10, num_frames=3)


def test_labels_supervise_only_answers(tok):
    out = encode_conversation(tok, TWO_TURNS, num_image_tokens=4)
    ids, labels = out["input_ids"], out["labels"]
    assert len(ids) == len(labels)
    supervised = [i for i, lab in enumerate(labels) if lab != IGNORE_INDEX]
    assert all(labels[i] == ids[i] for i in supervised)
    # Exactly the two answers with their closing <|im_end|>, nothing else.
    answers = tok.decode([ids[i] for i in supervised])
    assert answers == "It is [SEG].<|im_end|>Sure, [SEG].<|im_end|>"
    # Two contiguous runs, each right after "<|im_start|>assistant\n".
    runs = [i for i in supervised if i - 1 not in supervised]
    assert len(runs) == 2
    for start in runs:
        assert tok.decode(ids[:start]).endswith("<|im_end|>\n<|im_start|>assistant\n")
    # The separator after each answer is not supervised.
    for end in [i for i in supervised if i + 1 not in supervised]:
        assert ids[end] == tok.eos_token_id and labels[end + 1] == IGNORE_INDEX
    seg = tok.convert_tokens_to_ids("[SEG]")
    assert [ids[i] for i in supervised].count(seg) == 2
    assert ids.count(tok.convert_tokens_to_ids(CTX)) == 4


def test_piecewise_encoding_equals_whole_text_encoding(tok):
    out = encode_conversation(tok, TWO_TURNS, num_image_tokens=8, system="You segment.")
    text = render_conversation(TWO_TURNS, num_image_tokens=8, system="You segment.")
    assert out["input_ids"] == tok.encode(text, add_special_tokens=False)
    assert all(lab == IGNORE_INDEX for lab in out["labels"][:10])


def test_encode_rejects_seg_before_add_special_tokens():
    plain = load_tokenizer(tiny_tokenizer_path())
    with pytest.raises(ValueError, match=r"\[SEG\]"):
        encode_conversation(plain, TWO_TURNS, num_image_tokens=2)


def test_truncation_never_cuts_image_tokens(tok):
    full = encode_conversation(tok, TWO_TURNS, num_image_tokens=4)
    short = encode_conversation(tok, TWO_TURNS, num_image_tokens=4, max_length=12)
    assert short["input_ids"] == full["input_ids"][:12] and len(short["labels"]) == 12
    with pytest.raises(ValueError, match="cut the image tokens"):
        encode_conversation(tok, TWO_TURNS, num_image_tokens=4, max_length=5)


def test_turns_from_llava():
    conv = [
        {"from": "gpt", "value": "dropped"},
        {"from": "human", "value": "<image>\nWhat is it?"},
        {"from": "gpt", "value": " A cat. "},
        {"from": "human", "value": "Colour?"},
    ]
    assert turns_from_llava(conv) == [Turn("<image>\nWhat is it?", "A cat."), Turn("Colour?")]
    with pytest.raises(ValueError, match="unknown role"):
        turns_from_llava([{"from": "system", "value": "x"}])


def test_question_and_answer_lists_are_sa2va_s():
    """projects/sa2va/datasets/common.py: 16 questions (with repeats), 5 answers."""
    assert len(SEG_QUESTIONS) == 16 and len(set(SEG_QUESTIONS)) == 10
    assert SEG_QUESTIONS[0] == "Can you segment the {expression} in this image?"
    assert SEG_QUESTIONS[1] == "Please segment {expression} in this image."
    assert SEG_QUESTIONS[6] == (
        "What is {expression} in this image? Please respond with segmentation mask?")
    assert SEG_QUESTIONS[10] == (
        "Where is the {expression} in this picture? Please respond with a segmentation mask.")
    assert all(q.count("{expression}") == 1 for q in SEG_QUESTIONS)
    assert SEG_ANSWERS == ("It is [SEG].", "Sure, [SEG].", "Sure, it is [SEG].",
                           "Sure, the segmentation result is [SEG].", "[SEG].")


@pytest.mark.parametrize("video,expression,question", [
    (False, "The Dog.", " Please segment The Dog. in this image."),      # RES.py
    (True, "the dog", "Please segment the dog."),                         # refVOS.py
    (True, "Which dog runs?", " Which dog runs? Please respond with a segmentation mask."),
])
def test_inference_prompts(video, expression, question):
    text, (start, end) = inference_prompt(expression, 2, video=video)
    assert text == ("<|im_start|>user\n<img><IMG_CONTEXT><IMG_CONTEXT></img>\n" + question
                    + "<|im_end|>\n<|im_start|>assistant\n")
    assert text[start:end] == expression
    video_text, _ = inference_prompt(expression, 4, num_frames=2, video=video)
    assert "<img><IMG_CONTEXT><IMG_CONTEXT></img>\n<img><IMG_CONTEXT><IMG_CONTEXT></img>\n" \
        in video_text
    with pytest.raises(ValueError, match="empty"):
        inference_prompt(" ", 2)
    with pytest.raises(ValueError, match="<image>"):
        inference_prompt("<image> dog", 2)


def test_token_span_covers_overlapping_tokens():
    offsets = [(0, 3), (3, 7), (7, 7), (7, 9), (9, 12)]
    assert token_span(offsets, 4, 8) == (1, 4)  # tokens 1 and 3 overlap; the empty one inside
    assert token_span(offsets, 3, 7) == (1, 2)
    with pytest.raises(ValueError, match="no token"):
        token_span(offsets, 12, 14)
