"""Referring conversations: exact expression spans, [SEG] per object, answer-only labels."""

import random

import pytest

from mpr_cma.datasets.conversation import (
    encode_referring,
    encode_referring_fitting,
    prepare_expression,
    sample_objects,
)
from mpr_cma.models.mllm.template import (
    IGNORE_INDEX,
    SEG_QUESTIONS,
    Turn,
    encode_conversation,
)
from mpr_cma.models.mllm.tokenizer import (
    SEG_TOKEN,
    add_special_tokens,
    load_tokenizer,
    tiny_tokenizer_path,
)

EXPRESSIONS = ["the red car", "Man on the LEFT.", "dog"]


@pytest.fixture(scope="module")
def tok():
    t = load_tokenizer(tiny_tokenizer_path())
    add_special_tokens(t)
    return t


@pytest.mark.parametrize("seed", [None, 0, 1, 2, 3])
@pytest.mark.parametrize("frames", [1, 3])
def test_spans_decode_to_the_expressions(tok, seed, frames):
    rng = random.Random(seed) if seed is not None else None
    enc = encode_referring(tok, EXPRESSIONS, num_image_tokens=4 * frames, num_frames=frames,
                           rng=rng)
    assert enc.expressions == ["the red car", "man on the left", "dog"]
    assert len(enc.expression_spans) == 3
    for (start, end), expression in zip(enc.expression_spans, enc.expressions, strict=True):
        assert tok.decode(enc.input_ids[start:end]).strip() == expression
    seg = tok.convert_tokens_to_ids(SEG_TOKEN)
    seg_pos = [i for i, t in enumerate(enc.input_ids) if t == seg]
    # object k's expression comes before its [SEG] and after the previous one
    assert all(s[1] <= p for s, p in zip(enc.expression_spans, seg_pos, strict=True))
    assert all(p < s[0] for p, s in zip(seg_pos, enc.expression_spans[1:], strict=False))


def test_ids_equal_sa2va_conversation_written_by_hand(tok):
    """rng=None takes the first question and answer of Sa2VA's lists; the ids equal the
    plain (xtuner-style) encoding of the conversation Sa2VA builds for these refs."""
    enc = encode_referring(tok, EXPRESSIONS, num_image_tokens=8)
    turns = [Turn("<image>\nCan you segment the the red car in this image?", "It is [SEG]."),
             Turn("Can you segment the man on the left in this image?", "It is [SEG]."),
             Turn("Can you segment the dog in this image?", "It is [SEG].")]
    whole = encode_conversation(tok, turns, num_image_tokens=8)
    assert enc.input_ids == whole["input_ids"]
    assert enc.labels == whole["labels"]


@pytest.mark.parametrize("rule,expression,expected", [
    # Sa2VA01RefSeg: lower-cased, one final "." dropped; no question form
    ("refcoco", "Man on the LEFT.", ("man on the left", False)),
    ("refcoco", "st. louis sign..", ("st. louis sign.", False)),
    ("refcoco", "Which one?", ("which one?", False)),
    # Sa2VA03RefVOS: "?" -> asked as is; else every "." removed, stripped, lower-cased
    ("refvos", "The Dog runs.", ("the dog runs", False)),
    ("refvos", "st. Bernard  moving. ", ("st bernard  moving", False)),
    ("refvos", "Which Dog runs. first?", ("Which Dog runs. first?", True)),
])
def test_expression_rules_of_sa2va_datasets(rule, expression, expected):
    assert prepare_expression(expression, rule) == expected


def test_refvos_questions_in_the_conversation(tok):
    enc = encode_referring(tok, ["Which dog runs?", "The St. Bernard."], num_image_tokens=8,
                           num_frames=2, rule="refvos")
    text = tok.decode(enc.input_ids)
    assert "</img>\nWhich dog runs?<|im_end|>" in text
    assert "Can you segment the the st bernard in this image?" in text
    assert enc.expressions == ["Which dog runs?", "the st bernard"]
    for (start, end), expression in zip(enc.expression_spans, enc.expressions, strict=True):
        assert tok.decode(enc.input_ids[start:end]).strip() == expression


@pytest.mark.parametrize("template", SEG_QUESTIONS)
def test_every_question_template_gives_exact_spans(tok, template, monkeypatch):
    import mpr_cma.datasets.conversation as conv

    monkeypatch.setattr(conv, "SEG_QUESTIONS", (template,))
    enc = conv.encode_referring(tok, ["small blue triangle"], num_image_tokens=4)
    (start, end), = enc.expression_spans
    assert tok.decode(enc.input_ids[start:end]).strip() == "small blue triangle"
    full = tok.decode(enc.input_ids)
    assert template.format(expression="small blue triangle") in full
    head, tail = template.split("{expression}")
    assert tok.decode(enc.input_ids[:start]).rstrip().endswith(head.rstrip())
    assert tok.decode(enc.input_ids[end:]).startswith(tail)


def test_labels_supervise_only_the_answers(tok):
    enc = encode_referring(tok, EXPRESSIONS, num_image_tokens=4)
    supervised = tok.decode([t for t, lab in zip(enc.input_ids, enc.labels, strict=True)
                             if lab != IGNORE_INDEX])
    assert supervised == "It is [SEG].<|im_end|>" * 3
    for start, end in enc.expression_spans:
        assert all(lab == IGNORE_INDEX for lab in enc.labels[start:end])


def test_answers_that_name_the_object_follow_the_seg_token(tok):
    rng = random.Random(0)
    enc = encode_referring(tok, EXPRESSIONS, num_image_tokens=4, rng=rng,
                           answer_style="seg_names_object")
    supervised = tok.decode([t for t, lab in zip(enc.input_ids, enc.labels, strict=True)
                             if lab != IGNORE_INDEX])
    # the prepared expression (lower-cased, final "." dropped), its leading article removed
    assert supervised == ("[SEG] red car.<|im_end|>[SEG] man on the left.<|im_end|>"
                          "[SEG] dog.<|im_end|>")
    # the [SEG] ids and expression spans are those of Sa2VA's style, shifted
    sa2va = encode_referring(tok, EXPRESSIONS, num_image_tokens=4)
    assert [tok.decode(enc.input_ids[a:b]) for a, b in enc.expression_spans] == [
        tok.decode(sa2va.input_ids[a:b]) for a, b in sa2va.expression_spans]
    video = encode_referring(tok, ["Which animal is running away?"], num_image_tokens=4,
                             rule="refvos", answer_style="seg_names_object")
    assert tok.decode(video.input_ids).endswith(
        "[SEG] Which animal is running away.<|im_end|>\n")   # asked as is, "?" dropped
    with pytest.raises(ValueError, match="answer_style must be one of"):
        encode_referring(tok, EXPRESSIONS, num_image_tokens=4, answer_style="named")


def test_answers_can_name_the_object_before_the_seg_token(tok):
    enc = encode_referring(tok, EXPRESSIONS, num_image_tokens=4, rng=random.Random(0),
                           answer_style="object_then_seg")
    supervised = tok.decode([t for t, lab in zip(enc.input_ids, enc.labels, strict=True)
                             if lab != IGNORE_INDEX])
    assert supervised == ("red car [SEG].<|im_end|>man on the left [SEG].<|im_end|>"
                          "dog [SEG].<|im_end|>")
    # one [SEG] per expression, in order, each after its own name
    seg_positions = [i for i, t in enumerate(enc.input_ids) if tok.decode([t]) == "[SEG]"]
    assert len(seg_positions) == 3
    assert tok.decode(enc.input_ids[:seg_positions[1]]).rstrip().endswith(
        "assistant\nman on the left")


def test_question_expression_is_asked_as_is_in_videos_only(tok):
    enc = encode_referring(tok, ["Which animal is running away?"], num_image_tokens=4,
                           rule="refvos")
    (start, end), = enc.expression_spans
    assert tok.decode(enc.input_ids[start:end]) == "Which animal is running away?"
    image = encode_referring(tok, ["Which animal is running away?"], num_image_tokens=4)
    assert "Can you segment the which animal is running away? in this image?" in tok.decode(
        image.input_ids)


def test_max_length_drops_trailing_objects(tok):
    full = encode_referring(tok, EXPRESSIONS, num_image_tokens=4)
    two = encode_referring(tok, EXPRESSIONS[:2], num_image_tokens=4)
    fitted = encode_referring_fitting(tok, EXPRESSIONS, 4, max_length=len(two.input_ids))
    assert fitted.input_ids == two.input_ids and len(fitted.expressions) == 2
    assert len(full.input_ids) > len(two.input_ids)
    with pytest.raises(ValueError, match="max_length"):
        encode_referring_fitting(tok, EXPRESSIONS, 4, max_length=5)


def test_bad_inputs(tok):
    with pytest.raises(ValueError, match="at least one"):
        encode_referring(tok, [], num_image_tokens=4)
    with pytest.raises(ValueError, match="empty"):
        encode_referring(tok, ["  "], num_image_tokens=4)
    with pytest.raises(ValueError, match="empty"):
        encode_referring(tok, [" . "], num_image_tokens=4, rule="refvos")
    with pytest.raises(ValueError, match="rule"):
        encode_referring(tok, ["dog"], num_image_tokens=4, rule="coco")


def test_sample_objects():
    rng = random.Random(0)
    assert sorted(sample_objects(3, 5, False, rng)) == [0, 1, 2]
    picked = sample_objects(8, 5, False, rng)
    assert len(set(picked)) == 5 and all(0 <= i < 8 for i in picked)
    assert len(sample_objects(2, 5, True, rng)) == 5  # Sa2VA: always N, with replacement


def test_sample_objects_with_replacement_repeats_even_with_enough_objects():
    """Sa2VA03RefVOS draws np.random.choice(n, 5) (numpy's default: with replacement) also
    when n > 5: 8 objects in 5 draws repeat one with probability 1 - 8!/3!/8^5 = 0.79."""
    draws = [sample_objects(8, 5, True, random.Random(seed)) for seed in range(40)]
    assert all(len(d) == 5 and all(0 <= i < 8 for i in d) for d in draws)
    repeated = sum(len(set(d)) < 5 for d in draws)
    assert 0 < repeated < 40
    assert {i for d in draws for i in d} == set(range(8))
