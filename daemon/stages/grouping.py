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

from daemon.batch import IntArray, SensorArray


@dataclass(frozen=True, slots=True)
class Groups:
    """A batch's rows grouped by sensor, stably (each sensor's rows keep their order).

    `order[i]` is the batch row at sorted position i and `row_sensor[i]` its sensor; group g
    holds sorted positions `starts[g] : starts[g] + counts[g]` and belongs to sensor
    `sensors[g]` (ascending); `gid[i]` is the group of sorted position i and `rank[i]` its index
    within that group.
    """

    order: IntArray
    row_sensor: IntArray
    sensors: SensorArray
    starts: IntArray
    counts: IntArray
    gid: IntArray
    rank: IntArray

    def sorted(self, column: Any) -> Any:
        """`column` in sorted (grouped) order."""
        return column[self.order]


def group_rows(sensor: SensorArray) -> Groups:
    """Group rows by sensor with one stable sort; O(n log n) in the batch, no per-row Python."""
    n = sensor.shape[0]
    # numpy's stable sort is a radix sort for 16-bit keys (O(n)) and a timsort otherwise,
    # which is several times slower on interleaved sensors.
    key = sensor.astype(np.uint16) if n and int(sensor.max()) < 1 << 16 else sensor
    order: IntArray = np.argsort(key, kind="stable").astype(np.int64, copy=False)
    ordered = sensor[order]
    first = np.empty(n, dtype=np.bool_)
    first[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    starts = np.flatnonzero(first).astype(np.int64, copy=False)
    counts = np.diff(np.append(starts, n)).astype(np.int64, copy=False)
    gid = np.cumsum(first, dtype=np.int64) - 1
    rank = np.arange(n, dtype=np.int64) - starts[gid]
    return Groups(order, ordered.astype(np.int64), ordered[starts], starts, counts, gid, rank)


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
