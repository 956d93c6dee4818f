"""Referring video object segmentation scoring (MeViS valid_u, Ref-DAVIS17) of saved predictions.

What is computed (the MeViS protocol, FORMATS.md): for every expression of
meta_expressions.json, the ground truth on each frame is the union of its anno_ids' masks;
J and F are the means over the video's frames of :func:`region_similarity` and
:func:`boundary_f_measure` (DAVIS 2017 definitions, bound_th 0.008); the benchmark J and F
are means over expressions, J&F = (J + F) / 2 (:func:`aggregate_expressions`).

Ref-DAVIS17 ("davis17" here = Sa2VA's layout of the valid split, with meta_expressions.json
and mask_dict): every expression in the file is pooled and scored with that same
per-expression protocol, which is what Sa2VA's evaluation does. It is NOT the ReferFormer
annotator average (:func:`annotator_average`), which needs annotator sets that this layout
does not record; results say so in "protocol_note".

Predictions come from a :class:`PngPredictions` folder (``PRED/<video>/<exp_id>/<frame>.png``,
non-zero = foreground; a ``PRED/Annotations/`` level, as Sa2VA's ``--submit`` writes, is
accepted) or a :class:`RleJsonPredictions` file, the results.json of Sa2VA's
``ref_vos_eval.py``: {video: {exp_id: {"frames": [...], "prediction_masks": [RLE, ...], ...}}}.

Bad input is an error, never a silent score: unknown videos / expression ids / frames and
size mismatches always; missing videos, expressions or frames (and an empty prediction
folder) unless ``allow_missing``, in which case they are scored as empty masks and listed
under "missing" in the results.
"""

import io
import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from mpr_cma.datasets.files import read_json
from mpr_cma.datasets.refvos_format import RefVOSSplit
from mpr_cma.datasets.rle import decode_rle
from mpr_cma.evaluation.aggregation import aggregate_expressions, expression_scores
from mpr_cma.evaluation.metrics import DEFAULT_BOUND_TH, region_and_boundary_pairs

logger = logging.getLogger(__name__)

PROTOCOL_NOTES = {
    "mevis_u": "MeViS valid_u: per-expression J and F (mean over frames), averaged over "
    "expressions; J&F = (J + F) / 2 (official tools/eval_mevis.py).",
    "davis17": "Ref-DAVIS17 valid (Sa2VA layout): all expressions pooled, per-expression "
    "J and F averaged over expressions (Sa2VA's protocol); not the ReferFormer annotator "
    "average.",
}

__all__ = [
    "PROTOCOL_NOTES",
    "PngPredictions",
    "PredictionError",
    "RleJsonPredictions",
    "check_prediction_index",
    "evaluate_predictions",
    "open_predictions",
    "score_expression",
    "summarize",
    "ObjectIdPngPredictions",
    "Predictions",
]


class PredictionError(ValueError):
    """Predictions that cannot be scored as given (missing, unknown or mis-sized masks)."""


def _examples(items: Sequence[str], n: int = 5) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" (+{len(items) - n} more)" if len(items) > n else "")


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_mask_png(data: bytes) -> np.ndarray:
    """bool (H, W) mask of a PNG file's bytes: non-zero pixel = foreground (of an RGB(A)
    PNG: any non-zero colour channel; of a palette PNG: a non-zero index).

    Greyscale PNGs (the 0/255 masks tools write) are decoded by OpenCV, about 15% less
    CPU than Pillow; other colour types by Pillow. Both give the stored values exactly.
    """
    # IHDR is the first chunk: 8-byte signature, length, b"IHDR", width, height, bit
    # depth (byte 24), colour type (byte 25; 0 = greyscale).
    if data[:8] == _PNG_SIGNATURE and data[12:16] == b"IHDR" and len(data) > 25 and not data[25]:
        arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if arr is not None and arr.ndim == 2:
            return arr != 0
    with Image.open(io.BytesIO(data)) as img:
        arr = np.asarray(img)
    if arr.ndim == 3:
        arr = arr[..., :3].any(axis=-1) if arr.shape[-1] >= 3 else arr[..., 0]
    return arr != 0


class PngPredictions:
    """Predicted masks as PNG files ``root/<video>/<exp_id>/<frame>.png`` (non-zero = fg).

    Raises:
        FileNotFoundError: If `root` is not a directory.
    """

    def __init__(self, root: str | Path) -> None:
        self.path = Path(root)
        if not self.path.is_dir():
            raise FileNotFoundError(f"prediction folder not found: {self.path}")
        self.root = self.path
        if (self.path / "Annotations").is_dir():
            self.root = self.path / "Annotations"
            logger.info("reading predictions from %s", self.root)
        self._index = {
            video.name: {
                exp.name: sorted(p.stem for p in exp.glob("*.png"))
                for exp in video.iterdir()
                if exp.is_dir()
            }
            for video in self.root.iterdir()
            if video.is_dir()
        }

    def index(self) -> dict[str, list[str]]:
        """{video: [exp_id, ...]} of the predictions present."""
        return {video: list(exps) for video, exps in self._index.items()}

    def frames(self, video: str, exp_id: str, meta_frames: Sequence[str]) -> list[str]:
        """Names of the frames predicted for one expression."""
        return self._index[video][exp_id]

    def raw(self, video: str, exp_id: str, frame: str) -> bytes:
        """The PNG file's bytes: equal bytes, equal mask (a key for caching decodes)."""
        return (self.root / video / exp_id / f"{frame}.png").read_bytes()

    def decode(self, raw: bytes, video: str, exp_id: str, frame: str) -> np.ndarray:
        """The mask of :meth:`raw`'s bytes."""
        return read_mask_png(raw)

    def load(self, video: str, exp_id: str, frame: str) -> np.ndarray:
        """bool (H, W) mask of one frame (non-zero pixel = foreground; RGB is converted)."""
        return self.decode(self.raw(video, exp_id, frame), video, exp_id, frame)


class RleJsonPredictions:
    """Sa2VA ``ref_vos_eval.py`` results.json: {video: {exp_id: item}} with RLE masks.

    An item has "prediction_masks" (one pycocotools RLE per frame, counts as str) and
    usually "frames" (the frame names in the masks' order). Without "frames" the masks are
    taken to follow meta_expressions.json's frame order and must be as many. A list of
    items with "video_id" and "exp_id" (before Sa2VA regroups them) is accepted too.

    Raises:
        FileNotFoundError: If the file does not exist.
        CorruptFileError: If it is not valid JSON (e.g. truncated).
        PredictionError: If it is not in that format.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"prediction file not found: {self.path}")
        data = read_json(self.path, "predictions file (Sa2VA results.json)")
        if isinstance(data, list):
            grouped: dict = {}
            for i, item in enumerate(data):
                if not isinstance(item, dict) or not {"video_id", "exp_id"} <= set(item):
                    raise PredictionError(f"{self.path}: item #{i} of the list lacks "
                                          "'video_id' / 'exp_id'")
                grouped.setdefault(str(item["video_id"]), {})[str(item["exp_id"])] = item
            data = grouped
        if not isinstance(data, dict) or {"dataset", "metrics"} <= set(data):
            raise PredictionError(
                f"{self.path}: expected Sa2VA's {{video: {{exp_id: {{'prediction_masks': "
                f"[...]}}}}}} (this looks like an MPR-CMA results.json of scores)"
            )
        self._items = {
            str(v): {str(e): item for e, item in exps.items()} for v, exps in data.items()
        }
        self._frame_index: dict[tuple[str, str], dict[str, int]] = {}

    def index(self) -> dict[str, list[str]]:
        """{video: [exp_id, ...]} of the predictions present."""
        return {video: list(exps) for video, exps in self._items.items()}

    def frames(self, video: str, exp_id: str, meta_frames: Sequence[str]) -> list[str]:
        """Names of the frames predicted for one expression (see the class docstring)."""
        item = self._items[video][exp_id]
        masks = item.get("prediction_masks") if isinstance(item, dict) else None
        where = f"{self.path}: {video}/{exp_id}"
        if not isinstance(masks, list):
            raise PredictionError(
                f"{where} has no 'prediction_masks' list (written with --submit?)"
            )
        names = [str(f) for f in item.get("frames", [])] or list(meta_frames)
        if len(names) != len(masks):
            raise PredictionError(f"{where}: {len(masks)} masks for {len(names)} frames")
        self._frame_index[video, exp_id] = {name: i for i, name in enumerate(names)}
        return names

    def _rle(self, video: str, exp_id: str, frame: str) -> object:
        if (video, exp_id) not in self._frame_index:
            self.frames(video, exp_id, [])
        index = self._frame_index[video, exp_id][frame]
        return self._items[video][exp_id]["prediction_masks"][index]

    def raw(self, video: str, exp_id: str, frame: str) -> object:
        """A hashable key of the frame's RLE: equal keys, equal masks."""
        rle = self._rle(video, exp_id, frame)
        try:
            counts = rle["counts"]
            return (tuple(rle["size"]), tuple(counts) if isinstance(counts, list) else counts)
        except (KeyError, TypeError):
            return ("undecodable", video, exp_id, frame)  # decode() names the error

    def decode(self, raw: object, video: str, exp_id: str, frame: str) -> np.ndarray:
        """bool (H, W) mask of the frame (`raw` from :meth:`raw`)."""
        rle = self._rle(video, exp_id, frame)
        return decode_rle(rle, f"{self.path}: {video}/{exp_id} frame {frame!r}")

    def load(self, video: str, exp_id: str, frame: str) -> np.ndarray:
        """bool (H, W) mask of one frame."""
        return self.decode(None, video, exp_id, frame)


class ObjectIdPngPredictions:
    """DAVIS-style object-id PNGs ``root/<video>/<frame>.png``: pixel value = object id.

    One (palette) PNG per frame holds every object of the video, as DAVIS 2017 results
    do. An expression's mask on a frame is the union of its `obj_id`s in that PNG, so the
    split's meta_expressions.json must give obj_ids (Ref-DAVIS17 does).

    Raises:
        FileNotFoundError: If `root` is not a directory.
    """

    def __init__(self, root: str | Path, split: RefVOSSplit) -> None:
        self.path = self.root = Path(root)
        if not self.path.is_dir():
            raise FileNotFoundError(f"prediction folder not found: {self.path}")
        self.split = split
        self._frames = {video.name: sorted(p.stem for p in video.glob("*.png"))
                        for video in self.root.iterdir() if video.is_dir()}

    def index(self) -> dict[str, list[str]]:
        """{video: [exp_id, ...]}: every expression of each video present in the folder."""
        return {video: list(self.split.expressions(video)) if video in self.split.videos
                else [] for video in self._frames}

    def frames(self, video: str, exp_id: str, meta_frames: Sequence[str]) -> list[str]:
        """Names of the frames predicted for the video (shared by its expressions)."""
        return self._frames[video]

    def raw(self, video: str, exp_id: str, frame: str) -> object:
        """A hashable key: the frame and the expression's object ids."""
        return (video, frame, self.split.expressions(video)[exp_id].obj_ids)

    def decode(self, raw: object, video: str, exp_id: str, frame: str) -> np.ndarray:
        """The mask of :meth:`raw`'s key (see :meth:`load`)."""
        return self.load(video, exp_id, frame)

    def load(self, video: str, exp_id: str, frame: str) -> np.ndarray:
        """bool (H, W) mask: the PNG's pixels whose value is one of the expression's ids."""
        expression = self.split.expressions(video)[exp_id]
        if not expression.obj_ids:
            raise PredictionError(f"{video}/{exp_id} has no obj_id in meta_expressions.json: "
                                  f"object-id PNGs ({self.root}/{video}) cannot be mapped to it")
        with Image.open(self.root / video / f"{frame}.png") as img:
            ids = np.asarray(img)
        if ids.ndim != 2:
            raise PredictionError(f"{self.root / video / frame}.png: object-id PNGs must be "
                                  f"single-channel (palette or grey), got shape {ids.shape}")
        return np.isin(ids, [int(i) for i in expression.obj_ids])


Predictions = PngPredictions | RleJsonPredictions | ObjectIdPngPredictions


def _object_id_layout(root: Path) -> bool:
    """True when the video folders hold PNG frames directly (no expression level)."""
    for video in sorted(p for p in root.iterdir() if p.is_dir()):
        return any(video.glob("*.png")) and not any(p.is_dir() for p in video.iterdir())
    return False


def open_predictions(
    path: str | Path, split: RefVOSSplit | None = None
) -> Predictions:
    """Predictions by what `path` is: a PNG folder (`<video>/<exp_id>/<frame>.png`, or
    DAVIS-style `<video>/<frame>.png` object-id PNGs, which need `split`) or a Sa2VA-style
    results.json."""
    path = Path(path)
    if path.is_dir() and _object_id_layout(path):
        if split is None:
            raise PredictionError(f"{path}: DAVIS-style <video>/<frame>.png predictions need "
                                  "the split's meta_expressions.json to map object ids")
        return ObjectIdPngPredictions(path, split)
    if path.is_dir():
        return PngPredictions(path)
    if path.is_file():
        return RleJsonPredictions(path)
    raise FileNotFoundError(f"predictions not found: {path} (a folder or a .json file)")


def check_prediction_index(
    split: RefVOSSplit, source: Predictions, allow_missing: bool
) -> dict[str, object]:
    """Compare the predictions present with meta_expressions.json, before any decoding.

    Returns:
        Missing report: {"videos": [...], "expressions": ["video/exp_id", ...],
        "frames": {"video/exp_id": [frame, ...]}, "num_frames": int}.

    Raises:
        PredictionError: On unknown videos, expression ids or frame names (always), and on
            anything missing or an empty source unless `allow_missing`.
    """
    index = source.index()
    where = f"predictions {source.path}"
    if not index or not any(index.values()):
        if not allow_missing:
            raise PredictionError(
                f"{where}: no predictions found (expected <video>/<exp_id>/<frame>.png or "
                "Sa2VA results.json); --allow-missing would score everything as empty"
            )
        logger.warning("%s: empty; every expression is scored as an empty mask", where)
    unknown = [v for v in index if v not in split.videos]
    unknown += [
        f"{v}/{e}"
        for v in index
        if v in split.videos
        for e in index[v]
        if e not in split.expressions(v)
    ]
    if unknown:
        raise PredictionError(
            f"{where}: videos / expression ids not in {split.meta_file}: {_examples(unknown)}"
            " (--allow-missing does not apply to unknown entries)"
        )
    report: dict = {"videos": [], "expressions": [], "frames": {}, "num_frames": 0}
    for video in split.videos:
        meta_frames = split.frames(video)
        if video not in index:
            report["videos"].append(video)
        for exp_id in split.expressions(video):
            key = f"{video}/{exp_id}"
            if video not in index or exp_id not in index[video]:
                report["num_frames"] += len(meta_frames)
                if video in index:
                    report["expressions"].append(key)
                continue
            present = set(source.frames(video, exp_id, meta_frames))
            extra = sorted(present - set(meta_frames))
            if extra:
                raise PredictionError(
                    f"{where}: {key} has frames not in {split.meta_file}: {_examples(extra)}"
                )
            absent = [f for f in meta_frames if f not in present]
            if absent:
                report["frames"][key] = absent
                report["num_frames"] += len(absent)
    if report["num_frames"] and not allow_missing:
        parts = []
        if report["videos"]:
            parts.append(f"{len(report['videos'])} videos ({_examples(report['videos'])})")
        if report["expressions"]:
            n, shown = len(report["expressions"]), _examples(report["expressions"])
            parts.append(f"{n} expressions ({shown})")
        if report["frames"]:
            frames = [f"{k}: {_examples(v, 3)}" for k, v in report["frames"].items()]
            parts.append("frames of " + _examples(frames))
        raise PredictionError(
            f"{where}: missing {report['num_frames']} frame masks: "
            + "; ".join(parts)
            + ". Pass --allow-missing to score them as empty masks."
        )
    return report


def score_expression(
    split: RefVOSSplit, sample: dict, bound_th: float = DEFAULT_BOUND_TH
) -> dict:
    """Per-frame J and F of one expression's predicted masks.

    Args:
        split: The ground truth (a split with a mask_dict).
        sample: {"video", "exp_id", "pred_masks": bool (T, H, W), T and (H, W) as the
            video's frames, optional "missing_frames": count}.
        bound_th: Boundary tolerance of F.

    Returns:
        {"key": "video/exp_id", "J": (T,) float64, "F": (T,) float64, "missing_frames"}.

    Raises:
        PredictionError: If the prediction's shape differs from the ground truth's.
    """
    video, exp_id = sample["video"], sample["exp_id"]
    gt = split.expression_masks(video, exp_id)
    pred = np.asarray(sample["pred_masks"])
    if pred.shape != gt.shape:
        raise PredictionError(
            f"{video}/{exp_id}: prediction shape {pred.shape} != ground truth {gt.shape}"
        )
    j, f = expression_scores(gt, pred, bound_th)
    return {"key": f"{video}/{exp_id}", "J": j, "F": f,
            "missing_frames": int(sample.get("missing_frames", 0))}


def summarize(results: Sequence[dict], dataset: str = "mevis_u") -> dict:
    """Aggregate :func:`score_expression` results with the MeViS protocol.

    Returns:
        {"J", "F", "J&F", "num_expressions", "protocol", "protocol_note",
        "per_expression": {"video/exp_id": {"J", "F", "J&F", "missing_frames"}}}.
    """
    out = aggregate_expressions({r["key"]: (r["J"], r["F"]) for r in results})
    for r in results:
        out["per_expression"][r["key"]]["missing_frames"] = r["missing_frames"]
    out["protocol_note"] = PROTOCOL_NOTES.get(dataset, PROTOCOL_NOTES["mevis_u"])
    return out


def evaluate_predictions(
    split: RefVOSSplit,
    source: Predictions,
    dataset: str = "mevis_u",
    allow_missing: bool = False,
    progress: bool = True,
) -> dict:
    """Score saved predictions against a split.

    The numbers are those of :func:`score_expression` on each expression's (T, H, W)
    masks; the work is done frame by frame over a video's expressions, so what several
    expressions share on a frame is done once: each ground-truth RLE is decoded once, the
    union of an anno_id set is built once, a prediction file whose bytes repeat (an empty
    mask, the same object predicted for two expressions) is decoded once, and a (ground
    truth, prediction) pair met again is not scored again.

    Returns:
        :func:`summarize`'s dict plus "anno_id_rule" (the split's
        applied rule, "file" or "sa2va") and "missing" (the report of
        :func:`check_prediction_index`, empty lists when nothing is missing).

    Raises:
        PredictionError: See the module docstring.
    """
    missing = check_prediction_index(split, source, allow_missing)
    if missing["num_frames"]:
        logger.warning("%d frame masks missing: scored as empty masks", missing["num_frames"])
    if not split.has_masks:
        raise ValueError(f"split {split.root} has no mask_dict: it cannot be scored here")
    present = source.index()
    by_key: dict[str, dict] = {}
    with tqdm(total=len(split), desc=f"scoring {dataset}", unit="exp",
              disable=not progress) as bar:
        for video in split.videos:
            by_key.update(_score_video(split, source, video, present.get(video, ())))
            bar.update(len(split.expressions(video)))
    results = [by_key[f"{e.video}/{e.exp_id}"] for e in split.iter_expressions()]
    result = summarize(results, dataset)
    result["anno_id_rule"] = split.anno_id_rule
    result["missing"] = missing
    return result


def _score_video(split: RefVOSSplit, source: Predictions, video: str,
                 present: Sequence[str]) -> dict[str, dict]:
    """{"video/exp_id": score_expression-style result} of every expression of `video`."""
    expressions = list(split.expressions(video).values())
    if not expressions:
        return {}
    size = split.frame_size(video)
    if size is None:
        raise ValueError(f"{split.root}: cannot tell the frame size of video {video!r}")
    frames = split.frames(video)
    have = {e.exp_id: set(source.frames(video, e.exp_id, frames)) if e.exp_id in present
            else set() for e in expressions}
    j_of = {e.exp_id: np.empty(len(frames)) for e in expressions}
    f_of = {e.exp_id: np.empty(len(frames)) for e in expressions}
    empty = np.zeros(size, dtype=bool)
    for t, frame in enumerate(frames):
        gts: dict = {}
        preds: dict = {None: empty}
        pairs: dict = {}  # (anno_ids, prediction bytes) -> its index in `masks`
        masks: list = []
        slots = []
        for e in expressions:
            pred_key = source.raw(video, e.exp_id, frame) if frame in have[e.exp_id] else None
            index = pairs.get((e.anno_ids, pred_key))
            if index is None:
                gt = gts.get(e.anno_ids)
                if gt is None:
                    gt = gts[e.anno_ids] = _union(split, video, e.anno_ids, t, empty)
                pred = preds.get(pred_key)
                if pred is None:
                    pred = preds[pred_key] = source.decode(pred_key, video, e.exp_id, frame)
                    if pred.shape != size:
                        raise PredictionError(
                            f"predictions {source.path}: {video}/{e.exp_id} frame {frame!r} "
                            f"has size {pred.shape}, the video's frames are {size} (H, W)")
                index = pairs[e.anno_ids, pred_key] = len(masks)
                masks.append((gt, pred))
            slots.append((e.exp_id, index))
        # The frame's distinct pairs are scored in one call (one packed array for all).
        j, f = region_and_boundary_pairs(masks)
        for exp_id, index in slots:
            j_of[exp_id][t], f_of[exp_id][t] = j[index], f[index]
    return {f"{video}/{e.exp_id}": {"key": f"{video}/{e.exp_id}", "J": j_of[e.exp_id],
                                    "F": f_of[e.exp_id],
                                    "missing_frames": len(frames) - len(have[e.exp_id])}
            for e in expressions}


def _union(split: RefVOSSplit, video: str, anno_ids: Sequence[str], index: int,
           empty: np.ndarray) -> np.ndarray:
    """bool (H, W) ground truth of frame `index`: the union of the anno_ids' masks (not
    to be written to: it may be a cached mask or `empty`)."""
    masks = [m for m in (split.anno_mask(video, a, index) for a in anno_ids) if m is not None]
    if not masks:
        return empty
    return masks[0] if len(masks) == 1 else np.logical_or.reduce(masks)
