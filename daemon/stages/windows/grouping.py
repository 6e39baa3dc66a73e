"""Array plumbing shared by the window stages: grouping a batch by sensor, growable per-sensor
state, and state carried across a reload.

Why: a batch may hold one reading from each of 10,000 sensors or thousands of readings of two,
and the window stages must cost a few numpy passes per batch either way — never a Python loop
per sensor or per reading. Rows are grouped by sensor once, with one stable sort, and all index
arithmetic (ranks within a sensor, where each sensor's rows go) is done on whole arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from daemon.batch import Batch, FloatArray, IntArray, SensorArray


@dataclass(frozen=True, slots=True)
class SortedRuns:
    """A batch's rows as runs, one per sensor, in ascending sensor order; within a run, the
    sensor's rows in batch order (a stable sort). `order` is the batch row at each sorted
    position, or None when the batch already was in that order (the simulated source emits
    it so), which saves a gather per column and a scatter per result.

    Per run: `sensors`, `starts` (sorted position of its first row), `counts`. Per sorted row:
    `gid` (its run), `rank` (its index in the run).
    """

    order: IntArray | None
    sensors: IntArray
    starts: IntArray
    counts: IntArray
    gid: IntArray
    rank: IntArray

    def sorted(self, column: Any) -> Any:
        """`column` (in batch row order) in sorted order."""
        return column if self.order is None else column[self.order]

    def batch_rows(self, positions: IntArray) -> IntArray:
        """The batch rows at sorted `positions`."""
        return positions if self.order is None else self.order[positions]

    def part(self, first: int, last: int) -> SortedRuns:
        """Runs `first` up to `last` (excluded), as if their rows were a batch of their own
        (already in sorted order)."""
        lo = int(self.starts[first])
        hi = int(self.starts[last]) if last < self.starts.shape[0] else self.rank.shape[0]
        return SortedRuns(
            None,
            self.sensors[first:last],
            self.starts[first:last] - lo,
            self.counts[first:last],
            self.gid[lo:hi] - first,
            self.rank[lo:hi],
        )


def sorted_runs(sensor: SensorArray) -> SortedRuns:
    """`sensor` as runs: a few O(n) passes when the rows are already grouped ascending."""
    n = sensor.shape[0]
    new = np.empty(n, dtype=np.bool_)
    new[:1] = True
    np.not_equal(sensor[1:], sensor[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    order: IntArray | None = None
    key = sensor
    if starts.shape[0] > 1 and (np.diff(sensor[starts]) <= 0).any():  # not grouped ascending
        order = np.argsort(_sort_key(sensor), kind="stable").astype(np.int64, copy=False)
        key = sensor[order]
        np.not_equal(key[1:], key[:-1], out=new[1:])
        starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, n))
    gid = np.repeat(np.arange(starts.shape[0]), counts)
    rank = np.arange(n) - np.repeat(starts, counts)
    return SortedRuns(order, key[starts].astype(np.int64), starts, counts, gid, rank)


def round6(column: FloatArray) -> FloatArray:
    """`column` rounded to 6 decimal places, in place: `rint(x * 1e6) / 1e6` (half to even;
    the division is correctly rounded, so the result is the float nearest the decimal).

    Then `+ 0.0`, which turns -0.0 into 0.0 and changes nothing else (IEEE: -0 + +0 = +0): a
    small negative value rounds to -0.0, which is 0 but would print as `-0.0`."""
    column *= 1e6
    np.rint(column, out=column)
    column /= 1e6
    column += 0.0
    return column


def runs_of(batch: Batch) -> SortedRuns:
    """`sorted_runs(batch.sensor)`, computed once per batch for all the stages that need it."""
    runs: SortedRuns | None = batch.recall("runs")
    if runs is None:
        runs = sorted_runs(batch.sensor)
        batch.remember("runs", runs)
    return runs


def _sort_key(sensor: SensorArray) -> SensorArray | npt.NDArray[np.uint16]:
    # numpy's stable sort is a radix sort for 16-bit keys (O(n)) and a timsort otherwise,
    # which is several times slower on interleaved sensors.
    if sensor.shape[0] and int(sensor.max()) < 1 << 16:
        return sensor.astype(np.uint16)
    return sensor


def grown(array: Any, needed: int, fill: float | int) -> Any:
    """`array` with at least `needed` rows (doubling, as `SENSORS` grows), new rows `fill`."""
    have = array.shape[0]
    if needed <= have:
        return array
    size = max(needed, 2 * have, 64)
    out = np.full((size, *array.shape[1:]), fill, dtype=array.dtype)
    out[:have] = array
    return out


S = TypeVar("S")


def carried(carry: dict[str, Any], key: str, state_type: type[S], make: Any, **same: Any) -> S:
    """The state under `carry[key]` when it is a `state_type` whose attributes equal `same`
    (e.g. the same window size), else a fresh `make()` stored there. This is how windows survive
    a pipeline rebuild on reload (`ctx.carry` outlives it), and restart when their shape changed."""
    state = carry.get(key)
    if isinstance(state, state_type) and all(
        getattr(state, name) == value for name, value in same.items()
    ):
        return state
    fresh: S = make()
    carry[key] = fresh
    return fresh
