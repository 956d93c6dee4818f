"""The shipped tiny tokenizer, loading rules and Sa2VA's extra tokens."""

import importlib.util
import json
from pathlib import Path

import pytest

from mpr_cma.models.mllm.tokenizer import (
    IMAGE_TOKENS,
    INTERNVL_SPECIAL_TOKENS,
    QWEN_SPECIAL_TOKENS,
    SA2VA_SPECIAL_TOKENS,
    add_special_tokens,
    load_tokenizer,
    tiny_tokenizer_path,
    token_id,
)

REPO = Path(__file__).resolve().parents[3]
TEXTS = [
    "Please segment the red car on the left.",
    "the 2nd person walking away, then turning around!",
    "Ünïcödé — 日本語のテキスト 🙂 ½ ∑ x² \u00a0nbsp",
    "  leading, trailing and   inner   spaces \t tabs\nnew\r\nlines  ",
    "[SEG] <p> </p> <vp> unseen-word: zyxwvut 12345 #@$%^&*(){}",
    "",
]


@pytest.fixture
def tok():
    return load_tokenizer(tiny_tokenizer_path())


def test_tiny_tokenizer_loads_offline_as_qwen2_fast(tok):
    assert tok.is_fast and type(tok).__name__ == "Qwen2TokenizerFast"
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert tok.bos_token is None and tok.unk_token is None
    assert tok.padding_side == "right"
    assert 400 <= len(tok) <= 600


def test_tiny_tokenizer_is_small():
    files = list(tiny_tokenizer_path().iterdir())
    assert {f.name for f in files} >= {"tokenizer.json", "tokenizer_config.json"}
    assert sum(f.stat().st_size for f in files) < 50_000


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip_any_text(tok, text):
    ids = tok.encode(text, add_special_tokens=False)
    assert all(0 <= i < len(tok) for i in ids)
    assert tok.decode(ids) == text


def test_nfc_normalisation_like_qwen(tok):
    # Qwen2 normalises to NFC: a decomposed e + combining acute decodes as the single é.
    assert tok.decode(tok.encode("e\u0301", add_special_tokens=False)) == "\u00e9"


def test_bpe_learned_referring_words(tok):
    text = "Please segment the red car on the left."
    assert len(tok.encode(text, add_special_tokens=False)) <= len(text) // 3
    assert tok.tokenize(" red") == ["Ġred"]


@pytest.mark.parametrize("special", QWEN_SPECIAL_TOKENS + INTERNVL_SPECIAL_TOKENS)
def test_special_tokens_are_single_ids(tok, special):
    idx = token_id(tok, special)
    assert idx is not None
    assert tok.encode(special, add_special_tokens=False) == [idx]
    assert tok.encode(f"a{special}b", add_special_tokens=False)[1:-1] == [idx]
    assert tok.decode([idx]) == special


def test_special_token_layout_matches_internvl(tok):
    # BPE entries first, then Qwen's three and InternVL's nine, in the real tokenizer's order.
    ids = [token_id(tok, t) for t in QWEN_SPECIAL_TOKENS + INTERNVL_SPECIAL_TOKENS]
    assert ids == list(range(len(tok) - 12, len(tok)))
    assert tok.eos_token_id == token_id(tok, "<|im_end|>")


def test_add_special_tokens_adds_five_distinct_and_is_idempotent(tok):
    before = len(tok)
    assert all(token_id(tok, t) is None for t in SA2VA_SPECIAL_TOKENS)
    num_added, ids = add_special_tokens(tok)
    assert num_added == 5 and len(tok) == before + 5
    sa2va_ids = [ids[t] for t in SA2VA_SPECIAL_TOKENS]
    assert sorted(sa2va_ids) == list(range(before, before + 5))
    for t in SA2VA_SPECIAL_TOKENS:
        assert tok.encode(t, add_special_tokens=False) == [ids[t]]
    assert [ids[t] for t in IMAGE_TOKENS] == [token_id(tok, t) for t in IMAGE_TOKENS]
    again = add_special_tokens(tok)
    assert again.num_added == 0 and again.ids == ids and len(tok) == before + 5
    seg = ids["[SEG]"]
    assert tok.encode("It is [SEG].", add_special_tokens=False).count(seg) == 1


def test_add_special_tokens_reports_missing_image_tokens(tmp_path):
    # A Qwen-like tokenizer without InternVL's image tokens: the tiny one minus them.
    src = tiny_tokenizer_path()
    data = json.loads((src / "tokenizer.json").read_text())
    data["added_tokens"] = [a for a in data["added_tokens"] if a["content"] not in IMAGE_TOKENS]
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    (tmp_path / "tokenizer_config.json").write_text((src / "tokenizer_config.json").read_text())
    tok = load_tokenizer(tmp_path)
    with pytest.raises(ValueError, match="IMG_CONTEXT"):
        add_special_tokens(tok)
    num_added, ids = add_special_tokens(tok, add_image_tokens=True)
    assert num_added == 8 and len(set(ids.values())) == 8


def test_load_tokenizer_missing_folder_names_path(tmp_path):
    missing = tmp_path / "InternVL2_5-1B"
    with pytest.raises(FileNotFoundError, match="InternVL2_5-1B"):
        load_tokenizer(missing)
    with pytest.raises(FileNotFoundError, match="no tokenizer files"):
        load_tokenizer(tmp_path)


def test_generator_regenerates_identical_files(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "make_tiny_tokenizer", REPO / "scripts" / "make_tiny_tokenizer.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    written = script.write(tmp_path)
    shipped = sorted(p.name for p in tiny_tokenizer_path().iterdir())
    assert sorted(p.name for p in written) == shipped
    for path in written:
        assert path.read_bytes() == (tiny_tokenizer_path() / path.name).read_bytes(), path.name


def test_tiny_model_config_matches_the_shipped_tokenizer(tok):
    from mpr_cma.models.mllm.configs import tiny_internvl_config

    cfg = tiny_internvl_config()
    assert cfg["llm"]["vocab_size"] == len(tok)
    assert cfg["img_context_token_id"] == tok.convert_tokens_to_ids("<IMG_CONTEXT>")
