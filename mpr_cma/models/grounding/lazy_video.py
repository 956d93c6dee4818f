"""Video features encoded one frame at a time, when `segment_video` asks for them.

`SAM2Grounding.encode` on a whole video holds the Hiera activations and the features of
every frame at once, so peak memory grows with the number of frames T (Sa2VA's
`predict_forward` does this). SAM-2's own video predictor instead encodes a frame when
it is visited (`_get_image_feature`) and keeps only what memory needs. `LazyVideoFeatures`
does the same for `segment_video`: `frame(t)` preprocesses and encodes frame t alone, and
only the key frames' features are kept (a temporal MBA decodes them together, and their
memory is encoded after that). With the memory bank pruned to the frames SAM-2 can still
read (`video.segment_video`), inference memory is flat in T apart from the per-frame
outputs.

Each frame goes through the same `preprocess` and `encode` as in the batched path, with a
batch of one; tests/models/grounding/test_lazy_video.py checks the masks against it.
"""

from collections.abc import Callable, Sequence

from torch import Tensor

from mpr_cma.models.grounding.outputs import GroundingFeatures


class LazyVideoFeatures:
    """`GroundingFeatures`-like access (`num_frames`, `frame(t)`) that encodes on demand.

    Args:
        grounding: the SAM2Grounding model (its `preprocess(video=True)` and `encode`).
        load_frame: t -> (1, 3, H, W) uint8 tensor of frame t (read when first needed).
        num_frames: T.
        keep: frames whose features are kept once encoded (the key frames).
        device: where the encoder runs.
    """

    def __init__(self, grounding, load_frame: Callable[[int], Tensor], num_frames: int,
                 keep: Sequence[int] = (), device=None):
        if num_frames < 1:
            raise ValueError("LazyVideoFeatures needs at least one frame")
        self.grounding = grounding
        self.load_frame = load_frame
        self._num_frames = num_frames
        self.keep = {int(t) for t in keep}
        self.device = device
        self._cache: dict[int, GroundingFeatures] = {}
        self.encoded: list[int] = []   # frames in the order they were encoded (for tests)

    @property
    def num_frames(self) -> int:
        """T, the number of frames."""
        return self._num_frames

    def frame(self, t: int) -> GroundingFeatures:
        """Features of frame t (F = 1): encoded now, or the kept ones of a key frame."""
        t = int(t)
        if not 0 <= t < self._num_frames:
            raise IndexError(f"frame {t} out of range for {self._num_frames} frames")
        if t in self._cache:
            return self._cache[t]
        pixels = self.grounding.preprocess(self.load_frame(t), video=True)
        features = self.grounding.encode(pixels.to(self.device or pixels.device))
        self.encoded.append(t)
        if t in self.keep:
            self._cache[t] = features
        return features


__all__ = ["LazyVideoFeatures"]
