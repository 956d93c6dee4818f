"""Regenerate the tiny tokenizer shipped in mpr_cma/models/mllm/tiny_tokenizer/.

Usage:
    python scripts/make_tiny_tokenizer.py              # rewrite the shipped files
    python scripts/make_tiny_tokenizer.py --out DIR    # write the files into DIR instead
    python scripts/make_tiny_tokenizer.py --check      # exit 1 if the shipped files differ

The tiny tokenizer has the structure of InternVL2.5's (Qwen2.5) tokenizer at ~1/300 of its
size, so CPU tests and the demo exercise the real code paths:
- byte-level BPE with Qwen2's NFC normaliser, pre-tokenizer regex and byte-level decoder,
  so any text encodes (no unknown token) and decodes back;
- ids 0..255 are the 256 byte symbols (GPT-2 byte order, as in Qwen), then the merges;
- then Qwen's `<|endoftext|>`, `<|im_start|>`, `<|im_end|>` and InternVL's `<img>`,
  `</img>`, `<IMG_CONTEXT>`, `<quad>`, `</quad>`, `<ref>`, `</ref>`, `<box>`, `</box>`,
  in the real tokenizer's order; eos `<|im_end|>`, pad `<|endoftext|>`, no bos, no unk.
  Sa2VA's `[SEG]` etc. are NOT included: `add_special_tokens` adds them, as on the real one.

The merges are learned on a small built-in corpus of referring-expression English by a
plain BPE loop written here (most frequent pair first, ties broken by the pair's text), so
the output depends only on this file: running it twice gives byte-identical files, which
tests/models/mllm/test_tokenizer.py checks.
"""

import argparse
import filecmp
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, processors
from tokenizers import pre_tokenizers as pre

from mpr_cma.models.mllm.tokenizer import (
    ENDOFTEXT_TOKEN,
    IM_END_TOKEN,
    INTERNVL_SPECIAL_TOKENS,
    QWEN_SPECIAL_TOKENS,
)

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "mpr_cma" / "models" / "mllm" / "tiny_tokenizer"

# 256 byte symbols + 244 merges = 500 BPE entries; + 12 special tokens = 512 ids, a round
# embedding size before Sa2VA's 5 tokens are added.
NUM_MERGES = 244

# Qwen2's pre-tokenizer split: contractions, letter runs (with one leading non-letter),
# single digits, punctuation runs, newlines, whitespace.
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

COLOURS = "red green blue yellow white black brown orange pink purple grey gray dark light"
SHAPES = "square circle triangle rectangle star ring disk box ball block cube stripe"
OBJECTS = (
    "person man woman boy girl child people player dog cat horse cow sheep bird car bus "
    "truck bike motorcycle boat plane train chair table bench bed couch cup bottle bowl "
    "plate umbrella kite tree sign object thing animal elephant zebra giraffe fish duck"
)
RELATIONS = (
    "left right top bottom middle center front behind back near next to above below under "
    "on in at beside between closest farthest far corner side edge of the with"
)
ORDINALS = "first second third fourth fifth last one two three four five 1st 2nd 3rd"
SIZES = "big small large tiny tall short long biggest smallest larger smaller"
MOTION = (
    "moving walking running jumping flying swimming turning standing sitting eating "
    "looking holding riding crossing chasing following leaving coming going staying "
    "moves walks runs jumps flies turns stands sits away forward backward around still"
)
PHRASES = (
    "Please segment {e} in this image.",
    "Please segment {e}.",
    "Can you segment the {e} in this image?",
    "What is {e} in this image? Please output a segmentation mask.",
    "Where is the {e} in this picture? Please respond with a segmentation mask.",
    "Could you provide a segmentation mask for the {e} in this video?",
    "Please identify and segment the {e}.",
    "It is the {e}.",
    "Sure, it is the {e}.",
    "Sure, the segmentation result is the {e}.",
    "The {e} and the {e2} are shown.",
)
EXTRA_LINES = (
    "system", "user", "assistant", "image", "video", "frame", "mask", "masks", "segmentation",
    "There are 3 part regions in the picture: region1, region2 and region3.",
    "Describe the image in detail.", "What is happening in the video?",
    "Yes.", "No.", "Thank you!", "You are a helpful assistant.",
)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table, in its canonical order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table, extra = {b: chr(b) for b in printable}, 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    order = printable + [b for b in range(256) if b not in printable]
    return {b: table[b] for b in order}


def corpus_lines() -> list[str]:
    """The training text: expressions built from the word lists inside question/answer
    phrasings. Deterministic: only nested loops over fixed lists, with fixed strides."""
    colours, shapes, objects = COLOURS.split(), SHAPES.split(), OBJECTS.split()
    relations, ordinals = RELATIONS.split(), ORDINALS.split()
    sizes, motion = SIZES.split(), MOTION.split()
    lines = [COLOURS, SHAPES, OBJECTS, RELATIONS, ORDINALS, SIZES, MOTION, *EXTRA_LINES]
    for i, obj in enumerate(objects + shapes):
        colour, size = colours[i % len(colours)], sizes[i % len(sizes)]
        rel, verb = relations[i % len(relations)], motion[i % len(motion)]
        other = objects[(3 * i + 1) % len(objects)]
        expressions = (
            f"{colour} {obj}",
            f"the {size} {obj} on the {rel}",
            f"the {ordinals[i % len(ordinals)]} {obj} from the left",
            f"{obj} {verb} {rel} the {other}",
            f"the {colour} {obj} that is {verb}",
        )
        for j, expr in enumerate(expressions):
            phrase = PHRASES[(i + j) % len(PHRASES)]
            lines.append(phrase.format(e=expr, e2=f"{colours[j]} {other}"))
            lines.append(expr.capitalize() + ".")
    return lines


def learn_merges(words: Counter, num_merges: int) -> list[tuple[str, str]]:
    """Plain BPE: repeatedly merge the most frequent adjacent pair of symbols.

    Args:
        words: pre-tokenized byte-level word -> count.
        num_merges: how many merges to learn.

    Returns:
        The merges in rank order. Ties in count are broken by the smaller (left, right)
        text pair, so the result never depends on dict or set iteration order.
    """
    splits = {word: list(word) for word in words}
    merges: list[tuple[str, str]] = []
    for _ in range(num_merges):
        pairs: Counter = Counter()
        for word, count in words.items():
            symbols = splits[word]
            for pair in zip(symbols, symbols[1:], strict=False):
                pairs[pair] += count
        if not pairs:
            raise RuntimeError(f"corpus too small: only {len(merges)} merges possible")
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        merges.append(best)
        for word, symbols in splits.items():
            out, k = [], 0
            while k < len(symbols):
                if k + 1 < len(symbols) and (symbols[k], symbols[k + 1]) == best:
                    out.append(symbols[k] + symbols[k + 1])
                    k += 2
                else:
                    out.append(symbols[k])
                    k += 1
            splits[word] = out
    return merges


def build_tokenizer() -> Tokenizer:
    """The tiny Qwen2-style tokenizer (a `tokenizers.Tokenizer`)."""
    normalizer = normalizers.NFC()
    pre_tokenizer = pre.Sequence([
        pre.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
        pre.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    words: Counter = Counter()
    for line in corpus_lines():
        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(line)):
            words[word] += 1
    merges = learn_merges(words, NUM_MERGES)

    vocab = {sym: i for i, sym in enumerate(bytes_to_unicode().values())}
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    model = models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False)
    tok = Tokenizer(model)
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.add_special_tokens([
        AddedToken(t, special=True, normalized=False, lstrip=False, rstrip=False)
        for t in (*QWEN_SPECIAL_TOKENS, *INTERNVL_SPECIAL_TOKENS)
    ])
    return tok


def tokenizer_config() -> dict:
    """tokenizer_config.json: the fields Qwen2.5 / InternVL2.5 set, for this vocabulary."""
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": IM_END_TOKEN,
        "errors": "replace",
        "model_max_length": 8192,
        "pad_token": ENDOFTEXT_TOKEN,
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }


def write(out_dir: Path) -> list[Path]:
    """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json to out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer()
    special_map = {"eos_token": IM_END_TOKEN, "pad_token": ENDOFTEXT_TOKEN}
    files = {
        "tokenizer.json": tok.to_str(pretty=True) + "\n",
        "tokenizer_config.json": json.dumps(tokenizer_config(), indent=2, sort_keys=True) + "\n",
        "special_tokens_map.json": json.dumps(special_map, indent=2, sort_keys=True) + "\n",
    }
    paths = []
    for name, text in files.items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8", newline="\n")
        paths.append(path)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SHIPPED, help="output folder")
    parser.add_argument("--check", action="store_true", help="compare with the shipped files")
    args = parser.parse_args()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            paths = write(Path(tmp))
            same = [
                (SHIPPED / p.name).is_file() and filecmp.cmp(p, SHIPPED / p.name, shallow=False)
                for p in paths
            ]
        print("identical" if all(same) else "DIFFERENT: rerun without --check")
        return 0 if all(same) else 1
    for path in write(args.out):
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
