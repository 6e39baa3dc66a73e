"""Per-sensor sliding windows for `normalize` and `moving_average`, vectorised across sensors.

How: every sensor keeps its last `window - 1` values (its history). A batch is laid out as one
flat array in which each sensor's rows follow its history, so the window ending at any row lies
inside that flat array, and a sliding reduction over the whole array — blind to where one sensor
ends and the next begins — is right at every row. That reduction takes a few vectorised passes
that double the span each time (a "sparse table"): min and max over `window` are two
overlapping spans of the largest power of two that fits, a sum adds the spans of the binary
digits of `window`. So a batch costs O(readings + sensors in it * window) and ~log2(window)
passes, whatever the mix: thousands of readings of four sensors, or one of each of 4,096.

The reduction must be associative, and its identity what an empty part of a young sensor's
window holds: min and max skip NaN (`np.fmin`, `np.fmax`), a sum adds 0.0 (divided by the count
for a mean). The reductions of one `SlidingWindows` share their identity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from daemon.batch import FloatArray, IntArray, SensorArray
from daemon.stages.windows.grouping import SortedRuns, grown, sorted_runs


@dataclass(frozen=True)
class Reduction:
    """An associative ufunc, its identity, and whether overlapping spans may be combined
    (min and max: yes; a sum would count the overlap twice)."""

    op: np.ufunc
    identity: float
    idempotent: bool


MIN = Reduction(np.fmin, math.nan, True)
MAX = Reduction(np.fmax, math.nan, True)
SUM = Reduction(np.add, 0.0, False)


@dataclass(frozen=True, slots=True)
class WindowRows:
    """Per batch row (batch row order): each reduction over the row's window, and how many
    readings that window holds (1..window; fewer while the sensor is young)."""

    reduced: tuple[FloatArray, ...]
    counts: IntArray


class SlidingWindows:
    """The last `window` readings of every sensor, reduced by each of `reductions`."""

    def __init__(self, window: int, reductions: tuple[Reduction, ...]) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if len({repr(r.identity) for r in reductions}) != 1:
            raise ValueError("the reductions of one SlidingWindows must share their identity")
        self.window = window
        self.reductions = reductions
        self._identity = reductions[0].identity
        self._history = np.full((0, window - 1), self._identity, dtype=np.float64)
        self._seen: IntArray = np.zeros(0, dtype=np.int64)

    def push(
        self, sensor: SensorArray, value: FloatArray, runs: SortedRuns | None = None
    ) -> WindowRows:
        """Append a batch to its sensors' windows; return each row's reduced window. `runs`:
        `sorted_runs(sensor)`, if the caller has it already."""
        n = sensor.shape[0]
        if n == 0:
            empty = np.empty(0, dtype=np.float64)
            return WindowRows(tuple(empty for _ in self.reductions), np.empty(0, dtype=np.int64))
        runs = runs if runs is not None else sorted_runs(sensor)
        self._reserve(int(runs.sensors[-1]) + 1)
        ordered = runs.sorted(value)
        before = (self._seen[runs.sensors] + 1).repeat(runs.counts)
        counts = np.minimum(before + runs.rank, self.window)
        parts = []
        g = runs.starts.shape[0]
        step = max(1, _MAX_FLAT // self.window)  # runs per part: bounds the flat array's size
        for first in range(0, g, step):
            part = runs if step >= g else runs.part(first, min(first + step, g))
            lo = int(runs.starts[first])
            parts.append(self._push_sorted(part, ordered[lo : lo + part.rank.shape[0]]))
        reduced = [np.concatenate(c) if len(parts) > 1 else c[0] for c in zip(*parts, strict=True)]
        if runs.order is not None:  # back to batch row order
            reduced = [_unsorted(col, runs.order) for col in reduced]
            counts = _unsorted(counts, runs.order)
        return WindowRows(tuple(reduced), counts)

    def _push_sorted(self, runs: SortedRuns, ordered: FloatArray) -> list[FloatArray]:
        flat, at = self._lay_out(runs, ordered)
        reduced = [self._sliding(r, flat, at) for r in self.reductions]
        self._remember(runs, flat, at)
        return reduced

    def _reserve(self, sensors: int) -> None:
        if sensors > self._seen.shape[0]:
            self._history = grown(self._history, sensors, self._identity)
            self._seen = grown(self._seen, sensors, 0)

    def _lay_out(self, runs: SortedRuns, ordered: FloatArray) -> tuple[FloatArray, IntArray]:
        """The flat array: each run's sensor history, then the run. Returns it and where each
        (sorted) row landed in it."""
        h = self.window - 1
        g = runs.starts.shape[0]
        at = np.arange(ordered.shape[0]) + (runs.gid + 1) * h
        flat = np.empty(ordered.shape[0] + g * h, dtype=np.float64)
        flat[at] = ordered
        if h:
            flat[(runs.starts + np.arange(g) * h)[:, None] + np.arange(h)] = self._history[
                runs.sensors
            ]
        return flat, at

    def _sliding(self, r: Reduction, flat: FloatArray, at: IntArray) -> FloatArray:
        """`r` over the `window` values of `flat` ending at each of `at`."""
        w = self.window
        if w == 1:
            return flat[at]
        level, span = flat, 1  # level[i]: r over flat[i : i + span]
        kept = {}  # the levels a sum combines: the binary digits of w
        while 2 * span <= w:
            if not r.idempotent and w & span:
                kept[span] = level
            level = r.op(level[:-span], level[span:])
            span *= 2
        # out[p - (w - 1)] for every p from w - 1 on: r over flat[p - w + 1 : p + 1]
        if r.idempotent:  # two spans, overlapping in the middle
            out = r.op(level[: level.shape[0] - (w - span)], level[w - span :])
        else:  # spans of the binary digits of w, one after the other
            length = flat.shape[0] - w + 1
            out = level[:length]
            start = span
            for part in sorted(kept, reverse=True):
                out = r.op(out, kept[part][start : start + length])
                start += part
        windows: FloatArray = out[at - (w - 1)]
        return windows

    def _remember(self, runs: SortedRuns, flat: FloatArray, at: IntArray) -> None:
        """Each sensor's last `window - 1` values (its history) and readings seen so far."""
        h = self.window - 1
        if h:
            ends = at[runs.starts + runs.counts - 1] + 1  # one past each run's last row
            self._history[runs.sensors] = flat[(ends - h)[:, None] + np.arange(h)]
        self._seen[runs.sensors] += runs.counts


_MAX_FLAT = 1 << 21  # about this many values at most in one flat array (16 MiB)


def _unsorted(column: npt.NDArray[Any], order: IntArray) -> npt.NDArray[Any]:
    out = np.empty_like(column)
    out[order] = column
    return out
