"""Tokenizer of the InternVL-2.5 MLLM (a Qwen2.5 byte-level BPE) and Sa2VA's extra tokens.

Sa2VA-1B uses the tokenizer of InternVL2_5-1B unchanged (Qwen2.5's, plus InternVL's image
tokens `<img>`, `</img>`, `<IMG_CONTEXT>` and its grounding tokens `<quad>`, `<ref>`,
`<box>` and their closers), then adds five tokens of its own with
`tokenizer.add_tokens([...], special_tokens=True)`:
`[SEG]` (the mask query), `<p>`/`</p>` (phrase brackets of grounded captions) and
`<vp>`/`</vp>` (visual-prompt region brackets). The model must resize its embeddings to
`len(tokenizer)` after `add_special_tokens`.

A tiny tokenizer with the same structure (byte-level BPE, Qwen's pre-tokenizer, the same
special tokens, ~500 entries) ships with the package for CPU tests and the demo; see
`tiny_tokenizer_path` and `scripts/make_tiny_tokenizer.py`, which regenerates it.
Nothing is ever downloaded: `load_tokenizer` only reads local folders.
"""

from importlib import resources
from pathlib import Path
from typing import NamedTuple

from transformers import AutoTokenizer, PreTrainedTokenizerBase

# Qwen2.5 chat tokens. `<|im_end|>` ends every turn and is Qwen2.5-Instruct's eos;
# `<|endoftext|>` is its pad token.
ENDOFTEXT_TOKEN = "<|endoftext|>"
IM_START_TOKEN = "<|im_start|>"
IM_END_TOKEN = "<|im_end|>"
QWEN_SPECIAL_TOKENS = (ENDOFTEXT_TOKEN, IM_START_TOKEN, IM_END_TOKEN)

# InternVL image tokens: each image (or video frame) is `<img>` + N x `<IMG_CONTEXT>` +
# `</img>`, and the N context embeddings are replaced by the projected ViT features.
IMG_START_TOKEN = "<img>"
IMG_END_TOKEN = "</img>"
IMG_CONTEXT_TOKEN = "<IMG_CONTEXT>"
IMAGE_TOKENS = (IMG_START_TOKEN, IMG_END_TOKEN, IMG_CONTEXT_TOKEN)
# The other tokens InternVL2.5 adds after Qwen's (box/ref grounding); unused by Sa2VA but
# kept in the tiny tokenizer so its special-token layout matches the real one.
INTERNVL_SPECIAL_TOKENS = IMAGE_TOKENS + ("<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>")

# Sa2VA's own tokens, in the order of its configs (`special_tokens` in sa2va_in25_1b.py).
SEG_TOKEN = "[SEG]"
SA2VA_SPECIAL_TOKENS = (SEG_TOKEN, "<p>", "</p>", "<vp>", "</vp>")

_TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer_config.json")


class AddedTokens(NamedTuple):
    """Result of `add_special_tokens`.

    Attributes:
        num_added: how many tokens were new to the tokenizer (0 on a second call).
        ids: token -> id for Sa2VA's tokens and the three InternVL image tokens.
    """

    num_added: int
    ids: dict[str, int]


def tiny_tokenizer_path() -> Path:
    """Folder of the tiny tokenizer shipped inside the package.

    Returns:
        Path to `mpr_cma/models/mllm/tiny_tokenizer/` (loadable with `load_tokenizer`).

    Raises:
        FileNotFoundError: the package was installed without its data files (the
            package-data rule for `tiny_tokenizer/*.json` is missing).
    """
    path = Path(str(resources.files(__package__) / "tiny_tokenizer"))
    if not (path / "tokenizer.json").is_file():
        raise FileNotFoundError(
            f"the tiny tokenizer is missing from the installed package: {path}/tokenizer.json "
            "(package data not installed; reinstall mpr_cma with its package data)"
        )
    return path


def load_tokenizer(
    path_or_name: str | Path, padding_side: str = "right"
) -> PreTrainedTokenizerBase:
    """Load a tokenizer from a local Hugging Face folder, never from the hub.

    Args:
        path_or_name: folder holding `tokenizer.json` (fast) or `vocab.json` + `merges.txt`,
            with `tokenizer_config.json`; e.g. an InternVL2_5-1B or Sa2VA-1B checkpoint
            folder, or `tiny_tokenizer_path()`.
        padding_side: Sa2VA pads on the right for training (its collate builds the
            attention mask from the unpadded lengths).

    Returns:
        The tokenizer (a fast Qwen2 tokenizer for InternVL2.5 and for the tiny one).

    Raises:
        FileNotFoundError: the folder does not exist or holds no tokenizer files; the
            message names the path (hub names such as "OpenGVLab/InternVL2_5-1B" are not
            resolved: download the folder first and pass its path).
    """
    path = Path(path_or_name)
    if not path.is_dir():
        raise FileNotFoundError(
            f"tokenizer folder not found: {path} (only local folders are read; nothing is "
            "downloaded at run time)"
        )
    if not any((path / name).is_file() for name in _TOKENIZER_FILES):
        raise FileNotFoundError(
            f"no tokenizer files in {path}: expected one of {', '.join(_TOKENIZER_FILES)}"
        )
    # trust_remote_code=False: InternVL2.5's tokenizer is the stock Qwen2 class, so no
    # repository code needs to run to load it.
    return AutoTokenizer.from_pretrained(
        str(path), local_files_only=True, trust_remote_code=False, padding_side=padding_side
    )


def token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int | None:
    """Id of `token` if the tokenizer has it as one entry, else None.

    `convert_tokens_to_ids` falls back to the unk id (or None when, as in Qwen, there is
    no unk token) for unknown tokens; both cases map to None here.
    """
    idx = tokenizer.convert_tokens_to_ids(token)
    if idx is None or (idx == tokenizer.unk_token_id and token != tokenizer.unk_token):
        return None
    return int(idx)


def add_special_tokens(
    tokenizer: PreTrainedTokenizerBase,
    tokens: tuple[str, ...] = SA2VA_SPECIAL_TOKENS,
    add_image_tokens: bool = False,
) -> AddedTokens:
    """Add Sa2VA's special tokens (`[SEG]`, `<p>`, `</p>`, `<vp>`, `</vp>`); idempotent.

    The tokens are added the way Sa2VA adds them (`add_tokens(..., special_tokens=True)`):
    never split, never normalised. Tokens already present are left alone, so a second call
    (or a Sa2VA-1B tokenizer that already has them) adds nothing and returns the same ids.

    Args:
        tokenizer: modified in place.
        tokens: the tokens to add.
        add_image_tokens: also add `<img>`, `</img>`, `<IMG_CONTEXT>` when missing. Off by
            default because an InternVL2.5 tokenizer always has them: their absence means
            the wrong tokenizer folder (e.g. plain Qwen2.5), which is reported instead.

    Returns:
        `AddedTokens(num_added, ids)`; resize the model's embeddings to `len(tokenizer)`.

    Raises:
        ValueError: an image token is missing and `add_image_tokens` is False.
    """
    missing_image = [tok for tok in IMAGE_TOKENS if token_id(tokenizer, tok) is None]
    if missing_image and not add_image_tokens:
        raise ValueError(
            f"tokenizer lacks the InternVL image tokens {missing_image}; is it an InternVL2.5 "
            "tokenizer? Pass add_image_tokens=True to add them."
        )
    wanted = dict.fromkeys((*missing_image, *tokens))  # ordered, without duplicates
    new = [tok for tok in wanted if token_id(tokenizer, tok) is None]
    num_added = tokenizer.add_tokens(new, special_tokens=True) if new else 0
    ids = {tok: token_id(tokenizer, tok) for tok in (*tokens, *IMAGE_TOKENS)}
    return AddedTokens(num_added=num_added, ids=ids)
