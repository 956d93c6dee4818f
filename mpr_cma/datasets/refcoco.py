"""RefCOCO / RefCOCO+ / RefCOCOg training samples in Sa2VA's form.

One sample = one COCO image with `max_objects` of its refs (Sa2VA:
`num_classes_per_sample=5`), each asked about with one of its sentences in its own turn and
answered with one `[SEG]`. As in Sa2VA (`third_parts/mmdet/datasets/refcoco.py`,
`Sa2VA01RefSeg`) the sentence is the REFER "raw" text, lower-cased with its final "."
dropped, in one of Sa2VA's question templates. The MLLM sees InternVL's dynamic tiles of
the image, SAM-2 the image resized to `sam2_image_size`; the masks are the refs'
annotations at the original resolution.

Objects per sample follow Sa2VA's draw by default (`Sa2VA01RefSeg._parse_annotations`:
`np.random.choice(len(instances), num_classes_per_sample, replace=True)`, 5 in its configs):
exactly `max_objects` refs drawn with replacement, so an image with fewer refs asks about
some of them twice and every sample has `max_objects` turns. `replace=False` (ours, the tiny
demo's recorded choice) draws min(max_objects, refs) distinct refs: no object asked twice.
"""

from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from mmengine.logging import print_log
from transformers import PreTrainedTokenizerBase

from mpr_cma.datasets.base import SkippingDataset, check_path, sam2_pixels, sentence_ids
from mpr_cma.datasets.conversation import (
    ANSWER_STYLES,
    MAX_OBJECTS,
    encode_referring_fitting,
    sample_objects,
)
from mpr_cma.datasets.layouts import locate_refcoco
from mpr_cma.datasets.refcoco_format import (
    RefCocoRecord,
    instances_path,
    load_refcoco,
    ref_mask,
    refs_path,
)
from mpr_cma.models.mllm.preprocess import (
    candidate_grids,
    find_closest_aspect_ratio,
    load_image_tiles,
    open_image,
)
from mpr_cma.models.mllm.tokenizer import (
    add_special_tokens,
    load_tokenizer,
    tiny_tokenizer_path,
)
from mpr_cma.registry import DATASETS

# Text tokens of one question/answer turn, for the length estimate of the sampler.
TOKENS_PER_TURN = 24


def build_tokenizer(tokenizer: PreTrainedTokenizerBase | str) -> PreTrainedTokenizerBase:
    """A tokenizer (or a local folder, or "tiny" for the shipped one) with Sa2VA's tokens."""
    if isinstance(tokenizer, str | Path):
        tokenizer = load_tokenizer(tiny_tokenizer_path() if tokenizer == "tiny" else tokenizer)
    add_special_tokens(tokenizer)
    return tokenizer


def num_tiles(width: int, height: int, max_tiles: int, image_size: int) -> int:
    """Tiles (+ thumbnail) InternVL's dynamic tiling cuts a width x height image into."""
    cols, rows = find_closest_aspect_ratio(width / height, candidate_grids(1, max_tiles),
                                           width, height, image_size)
    return cols * rows + (1 if cols * rows > 1 else 0)


@DATASETS.register_module()
class RefCOCODataset(SkippingDataset):
    """RefCOCO-family referring segmentation for training.

    Args:
        data_root: holds `<dataset>/instances.json`, `<dataset>/refs(<split_by>).p` and by
            default the images under `coco2014/train2014`; or Sa2VA's folders as they are
            (`ref_seg/<dataset>/...`, images in `glamm_data/images/coco2014/train2014` or
            `ref_seg/<dataset>/coco2014/train2014`), see `layouts.locate_refcoco`.
        tokenizer: tokenizer, local folder or "tiny" (Sa2VA's tokens are added).
        dataset: "refcoco", "refcoco+" or "refcocog".
        split_by: None = unc for refcoco/+, umd for refcocog.
        split: the refs' split (training: "train").
        image_root: image folder; default the layout's (`<data_root>/coco2014/train2014`).
        layout: "auto" (whichever layout's files exist), "mpr_cma" or "sa2va".
        max_objects: refs per sample (Sa2VA: 5).
        replace: True (Sa2VA): exactly max_objects refs drawn with replacement; False:
            min(max_objects, refs) distinct refs (see the module doc).
        mllm_image_size: InternViT tile size (448; tiny: 56).
        num_image_tokens_per_tile: LLM tokens per tile (256; tiny: 4).
        max_tiles: dynamic tiling's max_num (Sa2VA: 12).
        sam2_image_size: SAM-2 input size S (1024; tiny: 64).
        max_length: longest token sequence; trailing objects are dropped to fit.
        seed, max_refetch: see `SkippingDataset`.
        answer_style: how each turn is answered, `conversation.ANSWER_STYLES` (Sa2VA:
            "sa2va"; "seg_names_object" for a random-init LLM, the tiny demo).

    Raises:
        FileNotFoundError: a missing annotation file or image folder (named).
    """

    def __init__(self, data_root: str | Path, tokenizer: PreTrainedTokenizerBase | str = "tiny",
                 dataset: str = "refcoco", split_by: str | None = None, split: str = "train",
                 image_root: str | Path | None = None, max_objects: int = MAX_OBJECTS,
                 replace: bool = True, mllm_image_size: int = 448,
                 num_image_tokens_per_tile: int = 256, max_tiles: int = 12,
                 sam2_image_size: int = 1024, max_length: int = 8192,
                 seed: int | None = None, max_refetch: int = 20, layout: str = "auto",
                 answer_style: str = "sa2va") -> None:
        super().__init__(seed, max_refetch)
        self.name = dataset
        self.location = locate_refcoco(check_path(data_root, "data_root"), dataset, layout,
                                       image_root)
        root = self.location.ann_root
        self.image_root = check_path(self.location.image_root, "image folder")
        self.tokenizer = build_tokenizer(tokenizer)
        self.max_objects, self.replace = max_objects, replace
        if answer_style not in ANSWER_STYLES:
            raise ValueError(f"answer_style must be one of {ANSWER_STYLES}, got {answer_style!r}")
        self.answer_style = answer_style
        self.mllm_image_size, self.tokens_per_tile = mllm_image_size, num_image_tokens_per_tile
        self.max_tiles, self.max_length = max_tiles, max_length
        self.sam2_image_size = sam2_image_size
        self.records = self._load(root, dataset, split_by, split)
        groups: dict[int, list[int]] = defaultdict(list)
        for i, rec in enumerate(self.records):
            groups[rec.image_id].append(i)
        self.groups = list(groups.values())
        print_log(f"RefCOCODataset {dataset}({split_by}) {split}: {len(self.records)} refs on "
                  f"{len(self.groups)} images", logger="current")

    def _load(self, root: Path, dataset: str, split_by: str | None,
              split: str) -> list[RefCocoRecord]:
        """Refs of the split as records; a ref whose annotation, image or sentences are
        missing is logged with its ids and skipped (counted in `skipped`)."""
        check_path(refs_path(root, dataset, split_by), "refs pickle")
        check_path(instances_path(root, dataset), "instances file")
        records = load_refcoco(root, dataset, split_by, split, self.image_root,
                               skipped=self.skipped)
        if not records:
            raise ValueError(f"{refs_path(root, dataset, split_by)}: no usable refs in split "
                             f"{split!r}")
        return records

    def __len__(self) -> int:
        return len(self.groups)

    def describe(self, index: int) -> str:
        recs = [self.records[i] for i in self.groups[index]]
        return (f"{self.name} image {recs[0].image_id} ({recs[0].image_path}), refs "
                f"{[r.ref_id for r in recs]}")

    @property
    def modality_length(self) -> list[int]:
        """Estimated token count per sample (positive: it has an image), for the sampler."""
        lengths = []
        for group in self.groups:
            rec = self.records[group[0]]
            tiles = num_tiles(rec.width, rec.height, self.max_tiles, self.mllm_image_size)
            objects = self.max_objects if self.replace else min(len(group), self.max_objects)
            lengths.append(tiles * self.tokens_per_tile + TOKENS_PER_TURN * objects)
        return lengths

    def load(self, index: int, rng) -> dict:
        """One sample (see `collate.sa2va_collate` for the keys)."""
        group = [self.records[i] for i in self.groups[index]]
        picked = [group[i] for i in sample_objects(len(group), self.max_objects, self.replace,
                                                   rng)]
        # Sa2VA trains on the REFER "raw" sentence (its mmdet RefCocoDataset), evaluates on "sent"
        texts = [rng.choice(rec.raw_sentences) for rec in picked]
        image = open_image(picked[0].image_path)
        if (image.height, image.width) != (picked[0].height, picked[0].width):
            raise ValueError(f"{picked[0].image_path} is {image.height}x{image.width}, "
                             f"instances.json says {picked[0].height}x{picked[0].width}")
        tiles = load_image_tiles(image, self.max_tiles, self.mllm_image_size)
        enc = encode_referring_fitting(self.tokenizer, texts, tiles.shape[0] * self.tokens_per_tile,
                                       rng=rng, max_length=self.max_length,
                                       answer_style=self.answer_style)
        picked = picked[:len(enc.expressions)]
        masks = np.stack([ref_mask(rec) for rec in picked])[:, None]
        return {
            "input_ids": torch.tensor(enc.input_ids, dtype=torch.long),
            "labels": torch.tensor(enc.labels, dtype=torch.long),
            "pixel_values": tiles,
            "image_flags": torch.ones(tiles.shape[0], dtype=torch.long),
            "g_pixel_values": sam2_pixels(image, self.sam2_image_size).unsqueeze(0),
            "masks": torch.from_numpy(masks),
            "expression_spans": enc.expression_spans,
            "sentences": enc.expressions,
            "sentence_ids": sentence_ids(enc.expressions),
            "meta": {"dataset": self.name, "image_id": picked[0].image_id,
                     "ref_ids": [r.ref_id for r in picked]},
        }
