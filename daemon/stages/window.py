"""Per-sensor sliding windows for `normalize` and `moving_average`, vectorised across sensors.

How (van Herk / Gil-Werman): cut each sensor's stream into blocks of `window` readings. The
window ending at a reading is the suffix of the previous block (from the reading's slot + 1)
plus the prefix of its own block up to it. So a sensor's state is its open block's running
prefix plus the suffixes of its last completed block, and a batch costs a segmented prefix scan
over its rows (log2(window) passes at most), one suffix scan per block it completes, and a few
gathers — O(readings), whatever the mix of sensors: one reading from each of 10,000 sensors, or
thousands of two. No Python loop runs per sensor or per reading.

The reduction must be associative with an identity: min and max (`np.fmin`/`np.fmax`, identity
NaN, which they skip) and sum (identity 0.0, divided by the count for a mean).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from daemon.batch import FloatArray, IntArray, SensorArray
from daemon.stages.blocks import BlockBuffer


@dataclass(frozen=True)
class Reduction:
    """An associative ufunc and its identity (what an empty part of a window reduces to)."""

    op: np.ufunc
    identity: float


MIN = Reduction(np.fmin, math.nan)
MAX = Reduction(np.fmax, math.nan)
SUM = Reduction(np.add, 0.0)


@dataclass(frozen=True, slots=True)
class WindowRows:
    """Per batch row (batch row order): each reduction over the row's window, and how many
    readings that window holds (1..window; fewer while the sensor is young)."""

    reduced: tuple[FloatArray, ...]
    counts: IntArray


class SlidingWindows:
    """The last `window` readings of every sensor, reduced by each of `reductions`."""

    def __init__(self, window: int, reductions: tuple[Reduction, ...]) -> None:
        self.window = window
        self.reductions = reductions
        self._blocks = BlockBuffer(window, channels=1)
        self._cap = 0  # sensors the per-reduction state has rows for
        # Per reduction: `_run[s]` is the op over sensor s's open block so far, with an identity
        # slot at `_cap` (for rows that start a new block). `_suffix[s, j]` is the op over the
        # last completed block of s from slot j on, with an identity column at `window`; rows
        # past `_cap` are scratch for the suffixes of the blocks the current batch completes.
        self._run = [np.full(1, r.identity, dtype=np.float64) for r in reductions]
        self._suffix = [np.zeros((0, window + 1), dtype=np.float64) for _ in reductions]

    def push(self, sensor: SensorArray, value: FloatArray) -> WindowRows:
        """Append a batch to its sensors' windows; return each row's reduced window."""
        n = sensor.shape[0]
        if n == 0:
            empty = np.empty(0, dtype=np.float64)
            return WindowRows(tuple(empty for _ in self.reductions), np.empty(0, dtype=np.int64))
        w = self.window
        layout, [(ordered, stack)] = self._blocks.push(sensor, value)
        g = layout.groups
        self._reserve(int(g.sensors[-1]) + 1, layout.k)
        cap = self._cap
        # Rows of the block that was open when the batch came (rel == 0) continue its running
        # prefix and follow the last block completed before the batch (state row: the sensor);
        # rows of later blocks start afresh and follow a block completed in this batch (scratch
        # row cap + first + rel - 1). Selected by arithmetic, not boolean masks: cheaper.
        later: IntArray = np.minimum(layout.rel, 1)
        rs = g.row_sensor
        run_at = rs + later * (cap - rs)
        follows = rs + later * (cap + layout.first[g.gid] + layout.rel - 1 - rs)
        before_at = follows * (w + 1) + layout.slot + 1
        seg_rank = layout.slot - (1 - later) * layout.fill[g.gid]
        last = g.starts + g.counts - 1
        closes = layout.slot[last] == w - 1  # the batch ends a group exactly at a block end
        has_done = layout.done > 0
        newest = cap + (layout.first + layout.done - 1)[has_done]

        reduced = []
        for r, run, suffix in zip(self.reductions, self._run, self._suffix, strict=True):
            prefix = r.op(_segmented_scan(r.op, ordered, seg_rank), run[run_at])
            scratch = suffix[cap : cap + layout.k]
            scratch[:, :w] = r.op.accumulate(stack[:, ::-1], axis=1)[:, ::-1]
            scratch[:, w] = r.identity
            out = np.empty(n, dtype=np.float64)
            out[g.order] = r.op(suffix.ravel()[before_at], prefix)
            reduced.append(out)
            run[g.sensors] = np.where(closes, r.identity, prefix[last])
            suffix[g.sensors[has_done]] = suffix[newest]

        counts = np.empty(n, dtype=np.int64)
        counts[g.order] = np.minimum(layout.pos + 1, w)
        return WindowRows(tuple(reduced), counts)

    def _reserve(self, sensors: int, scratch: int) -> None:
        """Room for `sensors` sensors (doubling) plus `scratch` scratch suffix rows."""
        cap = self._cap
        new_cap = cap if sensors <= cap else max(sensors, 2 * cap, 64)
        for i, r in enumerate(self.reductions):
            if new_cap != cap:
                run = np.full(new_cap + 1, r.identity, dtype=np.float64)
                run[:cap] = self._run[i][:cap]
                self._run[i] = run
            old = self._suffix[i]
            if new_cap != cap or old.shape[0] < new_cap + scratch:
                rows = new_cap + max(2 * scratch, old.shape[0] - cap, 64)
                suffix = np.full((rows, self.window + 1), r.identity, dtype=np.float64)
                suffix[:cap] = old[:cap]
                self._suffix[i] = suffix
        self._cap = new_cap


def _segmented_scan(op: np.ufunc, x: FloatArray, seg_rank: IntArray) -> FloatArray:
    """Inclusive prefix `op` within runs of consecutive rows, `seg_rank` being each row's index
    in its run (Hillis-Steele: ceil(log2(longest run)) vectorised passes)."""
    out = x.copy()
    longest = int(seg_rank.max()) + 1
    step = 1
    while step < longest:
        combined = op(out[step:], out[:-step])  # from the previous pass's values
        out[step:] = np.where(seg_rank[step:] >= step, combined, out[step:])
        step *= 2
    return out
