"""Referring-video training samples (MeViS, Ref-YTVOS, ReVOS, Ref-DAVIS17 layout) in Sa2VA's form.

One sample = one video with `max_objects` of its expressions, one turn per expression. By
default they are drawn as Sa2VA does (`Sa2VA03RefVOS.prepare_data`, `select_number=5`:
`np.random.choice(n, 5)` when n > 5 - numpy's default is with replacement - and
`np.random.choice(n, 5, replace=True)` otherwise, i.e. always exactly 5 with replacement);
`replace=False` (ours) draws min(max_objects, n) distinct ones. The MLLM sees `num_frames`
key frames (Sa2VA training, `dataset_map_fn`, `sampled_frames=5`: 5 sorted random frames,
distinct when the video has more than 6, drawn with replacement otherwise; one 448 px tile
of 256 tokens each; `select_key_frames(mode="random")`). SAM-2 segments `sam2_frames`:
"same" (Sa2VA training: the key frames themselves, and its masks are those frames'), or a
`select_key_frames` mode ("first" / "uniform" / "random") with `sam2_num_frames` frames.
Masks are (O, F, H, W) at the video's resolution: per frame the union of the expression's
anno_ids (null = empty).

anno_ids follow `RefVOSSplit`'s `anno_id_rule` ("auto": the file's when every expression
has them, as MeViS / ReVOS; else Sa2VA's numbering, as its Ref-YTVOS loader
``dataset_type='refytvos'`` and VISA's mask_dict.pkl). Sa2VA's folders work as they are:
meta_expressions.json may lie in `data_root`/../meta_expressions/<split>/ and the mask_dict
one folder up (``rvos/train`` + ``rvos/meta_expressions/train/`` + ``rvos/mask_dict.pkl``).
"""

import random
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
from mpr_cma.datasets.refcoco import TOKENS_PER_TURN, build_tokenizer
from mpr_cma.datasets.refvos_format import RefVOSSplit
from mpr_cma.models.mllm.preprocess import (
    NUM_KEY_FRAMES,
    build_transform,
    open_image,
    select_key_frames,
)
from mpr_cma.registry import DATASETS

SAM2_FRAME_MODES = ("same", "first", "uniform", "random")


@DATASETS.register_module()
class RefVOSDataset(SkippingDataset):
    """Referring video object segmentation for training.

    Args:
        data_root: the split directory (JPEGImages/, meta_expressions.json, mask_dict).
        tokenizer: tokenizer, local folder or "tiny".
        name: dataset name for logs ("mevis", "revos", ...).
        meta_file, mask_file: see `RefVOSSplit` (default: inside data_root, else Sa2VA's
            places, see the module docstring).
        anno_id_rule: "auto", "file" or "sa2va", see `RefVOSSplit`.
        max_objects: expressions per sample (Sa2VA: 5).
        replace: True (Sa2VA): exactly max_objects drawn with replacement; False:
            min(max_objects, n) distinct expressions.
        num_frames: key frames of the MLLM (Sa2VA: 5).
        frame_mode: "random" (Sa2VA training), "first" or "uniform".
        sam2_frames: "same" (Sa2VA) or a key-frame mode for SAM-2's own frames.
        sam2_num_frames: frames for SAM-2 when sam2_frames is not "same".
        mllm_image_size, num_image_tokens_per_tile, sam2_image_size, max_length: as in
            `RefCOCODataset` (one tile per key frame).
        seed, max_refetch: see `SkippingDataset`.
        answer_style: how each turn is answered, `conversation.ANSWER_STYLES` (Sa2VA:
            "sa2va"; "seg_names_object" for a random-init LLM, the tiny demo).

    Raises:
        FileNotFoundError: a missing split directory, meta file, JPEGImages or mask file.
        ValueError: the split has no ground truth, or an unknown frame mode.
        CorruptFileError: meta_expressions.json or the mask_dict cannot be parsed.
    """

    def __init__(self, data_root: str | Path, tokenizer: PreTrainedTokenizerBase | str = "tiny",
                 name: str = "refvos", meta_file: str | None = None, mask_file: str | None = None,
                 max_objects: int = MAX_OBJECTS, replace: bool = True,
                 num_frames: int = NUM_KEY_FRAMES, frame_mode: str = "random",
                 sam2_frames: str = "same", sam2_num_frames: int = NUM_KEY_FRAMES,
                 mllm_image_size: int = 448, num_image_tokens_per_tile: int = 256,
                 sam2_image_size: int = 1024, max_length: int = 8192,
                 seed: int | None = None, max_refetch: int = 20,
                 anno_id_rule: str = "auto",
                 answer_style: str = "sa2va") -> None:
        super().__init__(seed, max_refetch)
        if sam2_frames not in SAM2_FRAME_MODES:
            raise ValueError(f"sam2_frames must be one of {SAM2_FRAME_MODES}, got {sam2_frames!r}")
        root = check_path(data_root, "data_root")
        check_path(root / "JPEGImages", "frame folder")
        self.split = RefVOSSplit(root, meta_file, mask_file, anno_id_rule=anno_id_rule,
                                 mask_in_parent=True)
        if not self.split.has_masks:
            raise ValueError(f"{root}: no mask_dict.json/.pkl - a split without ground truth "
                             "cannot be trained on")
        # Read now: a corrupt file fails at start, naming it, not as a run of bad samples.
        self.num_mask_entries = len(self.split.mask_dict)
        self.name = name
        self.tokenizer = build_tokenizer(tokenizer)
        self.max_objects, self.replace = max_objects, replace
        if answer_style not in ANSWER_STYLES:
            raise ValueError(f"answer_style must be one of {ANSWER_STYLES}, got {answer_style!r}")
        self.answer_style = answer_style
        self.num_frames, self.frame_mode = num_frames, frame_mode
        self.sam2_frames, self.sam2_num_frames = sam2_frames, sam2_num_frames
        self.mllm_image_size, self.tokens_per_tile = mllm_image_size, num_image_tokens_per_tile
        self.sam2_image_size, self.max_length = sam2_image_size, max_length
        self.videos = [v for v in self.split.videos if self.split.expressions(v)]
        self.transform = build_transform(mllm_image_size)
        print_log(f"RefVOSDataset {name}: {len(self.split)} expressions in {len(self.videos)} "
                  f"videos from {root} ({self.split.meta_file}, {self.split.mask_file}; "
                  f"{self.split.describe_anno_ids()})", logger="current")

    def __len__(self) -> int:
        return len(self.videos)

    def describe(self, index: int) -> str:
        return f"{self.name} video {self.videos[index]!r} ({self.split.root})"

    @property
    def modality_length(self) -> list[int]:
        """Estimated token count per sample (positive: it has images), for the sampler."""
        lengths = []
        for video in self.videos:
            n = len(self.split.expressions(video))
            objects = self.max_objects if self.replace else min(n, self.max_objects)
            lengths.append(self.num_frames * self.tokens_per_tile + TOKENS_PER_TURN * objects)
        return lengths

    def _frames(self, total: int, rng: random.Random) -> tuple[list[int], list[int]]:
        np_rng = np.random.default_rng(rng.randrange(2**32))
        key = select_key_frames(total, self.num_frames, self.frame_mode, np_rng)
        if self.sam2_frames == "same":
            return key, key
        return key, select_key_frames(total, self.sam2_num_frames, self.sam2_frames, np_rng)

    def _masks(self, video: str, anno_ids: tuple[str, ...], frames: list[int],
               size: tuple[int, int]) -> np.ndarray:
        """(F, H, W) union of the anno_ids' masks on the given frame numbers."""
        if not anno_ids:
            raise KeyError(f"{self.split.meta_file}: expression of video {video!r} has no anno_id")
        out = np.zeros((len(frames), *size), dtype=bool)
        for k, t in enumerate(frames):
            for anno_id in anno_ids:
                mask = self.split.anno_mask(video, anno_id, t)
                if mask is not None:
                    out[k] |= mask
        return out

    def load(self, index: int, rng: random.Random) -> dict:
        """One sample (see `collate.sa2va_collate` for the keys)."""
        video = self.videos[index]
        expressions = list(self.split.expressions(video).values())
        picked = [expressions[i] for i in sample_objects(len(expressions), self.max_objects,
                                                         self.replace, rng)]
        names = self.split.frames(video)
        key, sam_frames = self._frames(len(names), rng)
        images = {t: open_image(self.split.frame_path(video, names[t]))
                  for t in sorted(set(key) | set(sam_frames))}
        size = (images[key[0]].height, images[key[0]].width)
        if any((im.height, im.width) != size for im in images.values()):
            raise ValueError(f"video {video!r}: frames of different sizes")
        enc = encode_referring_fitting(
            self.tokenizer, [e.exp for e in picked], len(key) * self.tokens_per_tile,
            num_frames=len(key), rng=rng, max_length=self.max_length, rule="refvos",
            answer_style=self.answer_style)
        picked = picked[:len(enc.expressions)]
        masks = np.stack([self._masks(video, e.anno_ids, sam_frames, size) for e in picked])
        pixel_values = torch.stack([self.transform(images[t]) for t in key])
        return {
            "input_ids": torch.tensor(enc.input_ids, dtype=torch.long),
            "labels": torch.tensor(enc.labels, dtype=torch.long),
            "pixel_values": pixel_values,
            "image_flags": torch.ones(len(key), dtype=torch.long),
            "g_pixel_values": torch.stack([sam2_pixels(images[t], self.sam2_image_size)
                                           for t in sam_frames]),
            "masks": torch.from_numpy(masks),
            "expression_spans": enc.expression_spans,
            "sentences": enc.expressions,
            "sentence_ids": sentence_ids(enc.expressions),
            "meta": {"dataset": self.name, "video": video, "exp_ids": [e.exp_id for e in picked],
                     "key_frames": key, "sam2_frames": sam_frames},
        }
