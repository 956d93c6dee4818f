"""Peak resident memory of this process over a block of code, for the CPU benchmarks.

`torch.cuda.max_memory_allocated` has no CPU counterpart, and `ru_maxrss` only ever grows
for the whole process; `PeakRSS` samples the RSS from a thread while the block runs, so
one process can measure several steps one after the other (scripts/bench_train.py,
scripts/bench_video_memory.py).
"""

import threading
import time

import psutil

__all__ = ["PeakRSS"]


class PeakRSS:
    """Context manager: the peak RSS of this process while inside, sampled.

    Attributes (after the block): start, peak - RSS in bytes (int) when the block began and
    the largest sample seen in it (a peak shorter than `interval` seconds can be missed).
    """

    def __init__(self, interval: float = 0.01):
        self.interval, self.process = interval, psutil.Process()
        self.peak = self.start = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> "PeakRSS":
        self.start = self.peak = self.process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)
