"""Read and write the referring-video layout shared by MeViS, Ref-DAVIS17, Ref-YTVOS and ReVOS.

The layout (the one Sa2VA uses; see FORMATS.md)::

    <root>/JPEGImages/<video>/<frame>.jpg
    <root>/meta_expressions.json   {"videos": {video: {"frames": [...], "expressions":
                                    {exp_id: {"exp": str, "obj_id": [...], "anno_id": [...]}}}}}
    <root>/mask_dict.json (or .pkl) {str(anno_id): [RLE or null, one per frame]}

(Sa2VA's Ref-DAVIS17 / Ref-YTVOS folders keep meta_expressions.json in
``<root>/../meta_expressions/<split>/``; that is found too, see `layouts`.)
RLE is pycocotools' {"size": [h, w], "counts": str or bytes}; null means the object is
absent from that frame. The mask of an expression on a frame is the union of its anno_ids'
masks.

anno_ids (`anno_id_rule`): MeViS and ReVOS files give each expression its "anno_id" list,
the mask_dict keys of its objects ("file"). Ref-DAVIS17 and Ref-YTVOS files (ReferFormer's
meta_expressions.json) have none; their mask_dict.pkl was written by VISA
(utils/d2_datasets/refytvos_utils.py) with one key per expression numbered by
`sa2va_anno_ids` ("sa2va"): videos sorted by name, each video's expression ids sorted as
strings ("0", "1", "10", "11", "2", ...), one id per expression counting up from 0 across
all videos ("0", "1", ...). Sa2VA numbers them the same way (tools/eval/eval_davis.py, and
its Ref-YTVOS training loader, projects/sa2va/datasets/sa2va_data_03_refvos.py
``dataset_type='refytvos'``), and its Ref-DAVIS17 evaluation assigns these ids even when the
file has anno_ids (`DATASET_ANNO_ID_RULES`). "auto" (default) takes the file's anno_ids when
every expression has one and assigns Sa2VA's when none has; a file with some but not all
is an error (no released file is like that, and either reading could be wrong).

Expressions are listed per video in Sa2VA's order (expression ids sorted as strings).
Decoding is lazy: mask_dict is read on first use and decoded masks are kept in a small LRU
cache. Every error names the file and the key at fault; a corrupt (e.g. truncated) file
raises `CorruptFileError`.
"""

import logging
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mpr_cma.datasets.files import read_json, read_pickle
from mpr_cma.datasets.layouts import IMAGE_DIR, META_FILE, find_mask_file, find_meta_file
from mpr_cma.datasets.refvos_writer import write_refvos_split
from mpr_cma.datasets.rle import decode_rle

logger = logging.getLogger(__name__)

ANNO_ID_RULES = ("auto", "file", "sa2va")
# Benchmarks whose Sa2VA evaluation numbers the expressions itself, ignoring the file's
# anno_ids (tools/eval/eval_davis.py get_meta_exp); every other dataset: "auto".
DATASET_ANNO_ID_RULES = {"davis17": "sa2va"}

__all__ = [
    "ANNO_ID_RULES",
    "DATASET_ANNO_ID_RULES",
    "Expression",
    "RefVOSSplit",
    "sa2va_anno_ids",
    "write_refvos_split",
]


def sa2va_anno_ids(videos: Mapping[str, Mapping]) -> dict[tuple[str, str], str]:
    """Sa2VA's / VISA's anno_id of every expression of a meta_expressions.json "videos" dict.

    Videos sorted by name; within a video, expression ids sorted as strings; one id per
    expression, counting from 0 across videos (tools/eval/eval_davis.py ``get_meta_exp``,
    VISA utils/d2_datasets/refytvos_utils.py ``prepare_metas``, which wrote the
    Ref-DAVIS17 / Ref-YTVOS mask_dict.pkl keys).

    Returns:
        {(video, exp_id): anno_id as a string}.
    """
    ids: dict[tuple[str, str], str] = {}
    for video in sorted(videos):
        for exp_id in sorted(str(e) for e in videos[video]["expressions"]):
            ids[video, exp_id] = str(len(ids))
    return ids


@dataclass(frozen=True)
class Expression:
    """One referring expression of a video.

    Attributes:
        video: Video name.
        exp_id: Expression id (a string key of meta_expressions.json).
        exp: The sentence.
        obj_ids: Object ids, as in the file (may be empty).
        anno_ids: mask_dict keys whose union is the expression's mask (strings).
    """

    video: str
    exp_id: str
    exp: str
    obj_ids: tuple
    anno_ids: tuple[str, ...]


class RefVOSSplit:
    """One split in the referring-video layout: expressions, frames and ground-truth masks.

    Args:
        root: Split directory (holds JPEGImages/, and by default the two files below).
        meta_file: meta_expressions.json; default `root`/meta_expressions.json, else
            `root`/../meta_expressions/<split>/meta_expressions.json (Sa2VA's Ref-DAVIS17).
        mask_file: mask_dict.json or .pkl; default the first of those found in `root`
            (with `mask_in_parent` also in `root`/..), or none (a split without ground
            truth, e.g. MeViS valid).
        cache_size: Number of decoded (anno_id, frame) masks kept in memory.
        anno_id_rule: "auto", "file" or "sa2va" (module docstring); the rule applied is
            kept in `anno_id_rule` ("file" or "sa2va").
        mask_in_parent: Also look for the mask_dict one folder up (Sa2VA's
            ``rvos/mask_dict.pkl`` of Ref-YTVOS train; training readers only, since an
            evaluation split must not take another split's ground truth).

    Raises:
        FileNotFoundError: If the meta file (or a given mask file) does not exist.
        CorruptFileError: If the meta file is not valid JSON (e.g. truncated).
        ValueError: If the meta file does not have the documented structure, or some
            but not all expressions have an anno_id under the "auto" rule (or some lack
            one under "file").
    """

    def __init__(
        self,
        root: str | Path,
        meta_file: str | Path | None = None,
        mask_file: str | Path | None = None,
        cache_size: int = 512,
        anno_id_rule: str = "auto",
        mask_in_parent: bool = False,
    ) -> None:
        if anno_id_rule not in ANNO_ID_RULES:
            raise ValueError(f"anno_id_rule must be one of {ANNO_ID_RULES}, got {anno_id_rule!r}")
        self.root = Path(root)
        found_meta = find_meta_file(self.root)
        self.meta_file = Path(meta_file) if meta_file else found_meta or self.root / META_FILE
        if not self.meta_file.is_file():
            tried = "" if meta_file else (
                f" (nor {self.root.parent / 'meta_expressions' / self.root.name / META_FILE})")
            raise FileNotFoundError(f"meta expressions file not found: {self.meta_file}{tried}")
        if mask_file is not None:
            self.mask_file: Path | None = Path(mask_file)
            if not self.mask_file.is_file():
                raise FileNotFoundError(f"mask file not found: {self.mask_file}")
        else:
            self.mask_file = find_mask_file(self.root, in_parent=mask_in_parent)
        self.anno_id_rule = "file"
        self.overwritten_anno_ids = 0  # expressions whose file anno_id "sa2va" replaced
        self.videos = self._read_meta(anno_id_rule)
        self._mask_dict: dict | None = None
        self._cache: OrderedDict[tuple[str, int], np.ndarray | None] = OrderedDict()
        self._cache_size = cache_size
        self._sizes: dict[str, tuple[int, int]] = {}

    # ------------------------------------------------------------------ meta
    def _read_meta(self, rule: str) -> dict[str, dict]:
        data = read_json(self.meta_file, "meta expressions file")
        videos = data.get("videos") if isinstance(data, dict) else None
        if not isinstance(videos, dict):
            raise ValueError(f"{self.meta_file}: expected {{'videos': {{video: {{...}}}}}}")
        for video, info in videos.items():
            if not isinstance(info, dict) or not isinstance(info.get("frames"), list) or \
                    not isinstance(info.get("expressions"), dict):
                raise ValueError(
                    f"{self.meta_file}: video {video!r} lacks a 'frames' list or an "
                    "'expressions' dict"
                )
        self.anno_id_rule = self._choose_rule(videos, rule)
        assigned = sa2va_anno_ids(videos)
        parsed: dict[str, dict] = {}
        for video in sorted(videos):
            info = videos[video]
            expressions = {}
            for exp_id in sorted(info["expressions"]):  # Sa2VA's order (refVOS.py)
                entry = info["expressions"][exp_id]
                if not isinstance(entry, dict):
                    raise ValueError(f"{self.meta_file}: {video}/{exp_id} is not a dict")
                in_file = tuple(str(a) for a in entry.get("anno_id", ()))
                if self.anno_id_rule == "file":
                    anno_ids = in_file
                else:
                    anno_ids = (assigned[video, exp_id],)
                    self.overwritten_anno_ids += bool(in_file) and in_file != anno_ids
                obj_ids = entry.get("obj_id", [])
                obj_ids = tuple(obj_ids) if isinstance(obj_ids, list) else (obj_ids,)
                expressions[exp_id] = Expression(
                    video, exp_id, str(entry.get("exp", "")), obj_ids, anno_ids
                )
            parsed[video] = {"frames": [str(f) for f in info["frames"]], "expressions": expressions}
        if self.overwritten_anno_ids:
            logger.warning(
                "%s: anno_id rule 'sa2va' replaced the file's anno_id of %d expressions "
                "(as Sa2VA's evaluation does)", self.meta_file, self.overwritten_anno_ids)
        return parsed

    def _choose_rule(self, videos: dict, rule: str) -> str:
        """The rule applied: "file" or "sa2va" (see the module docstring)."""
        lacking = [f"{v}/{e}" for v in sorted(videos) for e in sorted(videos[v]["expressions"])
                   if not isinstance(videos[v]["expressions"][e], dict)
                   or "anno_id" not in videos[v]["expressions"][e]]
        total = sum(len(v["expressions"]) for v in videos.values())
        if rule == "sa2va" or (rule == "auto" and total and len(lacking) == total):
            return "sa2va"
        if lacking:
            how = ("anno_id_rule 'file' needs one for every expression"
                   if rule == "file" else "a file with some but not all is ambiguous")
            raise ValueError(
                f"{self.meta_file}: {len(lacking)} of {total} expressions have no 'anno_id' "
                f"(e.g. {', '.join(lacking[:3])}); {how}. Choose anno_id_rule 'sa2va' "
                "(Sa2VA's numbering of every expression) or add the missing anno_ids"
            )
        return "file"

    def describe_anno_ids(self) -> str:
        """One line saying which anno_id rule this split applies (for logs and reports)."""
        if self.anno_id_rule == "file":
            return "anno_id rule 'file': the anno_id lists of meta_expressions.json"
        note = (f"; replaced {self.overwritten_anno_ids} anno_ids of the file"
                if self.overwritten_anno_ids else "")
        return ("anno_id rule 'sa2va': assigned as Sa2VA/VISA do (videos by name, expression "
                f"ids sorted as strings, counting from 0 across videos){note}")

    @property
    def has_masks(self) -> bool:
        """Whether the split has ground truth (a mask_dict file)."""
        return self.mask_file is not None

    def frames(self, video: str) -> list[str]:
        """Frame names of `video`, in the file's order."""
        return self.videos[video]["frames"]

    def expressions(self, video: str) -> dict[str, Expression]:
        """{exp_id: Expression} of `video`."""
        return self.videos[video]["expressions"]

    def iter_expressions(self) -> Iterator[Expression]:
        """All expressions: videos by name, expression ids sorted as strings (Sa2VA's order)."""
        for video in self.videos:
            yield from self.expressions(video).values()

    def __len__(self) -> int:
        return sum(len(v["expressions"]) for v in self.videos.values())

    def frame_path(self, video: str, frame: str) -> Path:
        """Path of one JPEG frame."""
        return self.root / IMAGE_DIR / video / f"{frame}.jpg"

    def frame_size(self, video: str) -> tuple[int, int] | None:
        """(H, W) of the video: its first JPEG frame, else its first non-null RLE, else None."""
        if video not in self._sizes:
            path = self.frame_path(video, self.frames(video)[0])
            if path.is_file():
                with Image.open(path) as img:  # reads the header only
                    self._sizes[video] = (img.height, img.width)
            else:
                size = self._first_rle_size(video)
                if size is None:
                    return None
                self._sizes[video] = size
        return self._sizes[video]

    def _first_rle_size(self, video: str) -> tuple[int, int] | None:
        if not self.has_masks:
            return None
        for expression in self.expressions(video).values():
            for anno_id in expression.anno_ids:
                for rle in self.mask_dict.get(anno_id) or []:
                    if rle:
                        return int(rle["size"][0]), int(rle["size"][1])
        return None

    # ----------------------------------------------------------------- masks
    @property
    def mask_dict(self) -> dict:
        """The raw {str(anno_id): [RLE or None per frame]}, read on first use."""
        if self._mask_dict is None:
            if self.mask_file is None:
                raise ValueError(f"split {self.root} has no mask_dict (no ground truth)")
            if self.mask_file.suffix == ".pkl":
                # The dataset's own format (Sa2VA ships Ref-DAVIS17 as a pickle); only load
                # files from a trusted dataset directory.
                data = read_pickle(self.mask_file, "mask_dict pickle")
            else:
                data = read_json(self.mask_file, "mask_dict file")
            if not isinstance(data, dict):
                raise ValueError(f"{self.mask_file}: expected a dict of anno_id -> RLE list")
            self._mask_dict = {str(k): v for k, v in data.items()}
        return self._mask_dict

    def anno_mask(self, video: str, anno_id: str, index: int) -> np.ndarray | None:
        """Decoded mask of one anno_id on frame number `index` of `video` (None = absent).

        Raises:
            KeyError: If `anno_id` is not in mask_dict (the message names the file).
            ValueError: If the RLE does not decode or its size differs from the frame's.
        """
        key = (str(anno_id), index)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        where = f"{self.mask_file}: anno_id {anno_id!r}"
        if key[0] not in self.mask_dict:
            raise KeyError(f"{where} not found (video {video!r})")
        per_frame = self.mask_dict[key[0]]
        if not isinstance(per_frame, list) or index >= len(per_frame):
            n = len(per_frame) if isinstance(per_frame, list) else "no list of"
            raise ValueError(f"{where}: has {n} frames, video {video!r} needs frame {index}")
        rle = per_frame[index]
        mask = None if rle is None else decode_rle(rle, f"{where} frame {index}")
        size = self.frame_size(video)
        if mask is not None and size is not None and mask.shape != size:
            raise ValueError(
                f"{where} frame {index}: RLE size {mask.shape} differs from the frame size "
                f"{size} of video {video!r}"
            )
        self._cache[key] = mask
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return mask

    def expression_masks(self, video: str, exp_id: str) -> np.ndarray:
        """Ground truth of an expression: union of its anno_ids' masks on every frame.

        Returns:
            bool array (T, H, W), T = len(frames(video)).

        Raises:
            KeyError: If the expression or one of its anno_ids is unknown.
            ValueError: If a mask does not decode, or the frame size cannot be found.
        """
        expression = self.expressions(video)[exp_id]
        size = self.frame_size(video)
        if size is None:
            raise ValueError(
                f"cannot tell the frame size of video {video!r}: no JPEG under "
                f"{self.root / IMAGE_DIR} and no non-empty mask in {self.mask_file}"
            )
        frames = self.frames(video)
        out = np.zeros((len(frames), *size), dtype=bool)
        for t in range(len(frames)):
            for anno_id in expression.anno_ids:
                mask = self.anno_mask(video, anno_id, t)
                if mask is not None:
                    out[t] |= mask
        return out
