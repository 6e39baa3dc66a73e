"""Every sensor's stream cut into consecutive blocks of `window` readings, buffered in arrays:
the tumbling windows of `features`.

A block is only read whole when it completes, once every `window` readings, so the common case
is "write each reading into its sensor's open block": one vectorised scatter. The blocks one
batch completes are gathered into a `(k, window)` stack, whatever the mix of sensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from daemon.batch import BoolArray, FloatArray, IntArray, SensorArray
from daemon.stages.windows.grouping import SortedRuns, grown, sorted_runs


@dataclass(frozen=True, slots=True)
class BlockLayout:
    """Where a batch's rows fall in their sensors' blocks. Row arrays are in sorted order, see
    `SortedRuns`; group arrays have one entry per run (per sensor in the batch).

    For sorted row i: `slot[i]` is its place in its block (its position in its sensor's stream
    modulo `window`), and `rel[i]` its block counted from the one that was open when the batch
    arrived (0 = that block). Group g had `fill[g]` readings in its open block, and the batch
    completes `done[g]` blocks of it, stacked at `first[g]`, `first[g] + 1`, ... of the `k`
    completed blocks.
    """

    groups: SortedRuns
    slot: IntArray
    rel: IntArray
    fill: IntArray
    done: IntArray
    first: IntArray
    k: int

    @property
    def in_done(self) -> BoolArray:
        """Rows whose block this batch completes."""
        in_done: BoolArray = self.rel < self.done[self.groups.gid]
        return in_done


class BlockBuffer:
    """Every sensor's open block, per channel (e.g. value and ts): `fill` readings so far."""

    def __init__(self, window: int, channels: int) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self._open = [np.zeros((0, window), dtype=np.float64) for _ in range(channels)]
        self._seen: IntArray = np.zeros(0, dtype=np.int64)

    def push(
        self, sensor: SensorArray, *columns: FloatArray, runs: SortedRuns | None = None
    ) -> tuple[BlockLayout, list[tuple[FloatArray, FloatArray]]]:
        """Add a batch (one column per channel, batch row order) to the open blocks. `runs`:
        `sorted_runs(sensor)`, if the caller has it already.

        Returns the layout and, per channel, the sorted column and the `(k, window)` stack of
        the blocks this batch completed, ordered by sensor and then by block.
        """
        w = self.window
        g = runs if runs is not None else sorted_runs(sensor)
        needed = int(g.sensors[-1]) + 1  # groups are sorted by sensor
        self._open = [grown(buf, needed, 0.0) for buf in self._open]
        self._seen = grown(self._seen, needed, 0)

        seen = self._seen[g.sensors]
        self._seen[g.sensors] = seen + g.counts
        fill = seen % w
        done = (fill + g.counts) // w
        into_open = fill[g.gid] + g.rank  # readings before this one since the open block began
        rel, slot = np.divmod(into_open, w)
        first = np.cumsum(done) - done
        layout = BlockLayout(g, slot, rel, fill, done, first, int(done.sum()))
        row_sensor = g.sensors[g.gid]

        out = []
        if layout.k == 0:  # the common case: every reading just joins its open block
            flat_at = row_sensor * w + slot
            for buf, column in zip(self._open, columns, strict=True):
                ordered = g.sorted(column)
                buf.ravel()[flat_at] = ordered
                out.append((ordered, np.empty((0, w), dtype=np.float64)))
            return layout, out

        in_done = layout.in_done
        done_rows = np.flatnonzero(in_done)
        rest_rows = np.flatnonzero(~in_done)  # readings of blocks still open after this batch
        rest_at = row_sensor[rest_rows] * w + slot[rest_rows]
        stack_at = (first[g.gid[done_rows]] + rel[done_rows]) * w + slot[done_rows]
        # A group's first completed block starts with what was already buffered (its slots
        # past `fill` are overwritten by the batch's readings).
        resumed = (done > 0) & (fill > 0)
        for buf, column in zip(self._open, columns, strict=True):
            ordered = g.sorted(column)
            stack = np.empty((layout.k, w), dtype=np.float64)
            stack[first[resumed]] = buf[g.sensors[resumed]]  # read before the buffer is reused
            stack.ravel()[stack_at] = ordered[done_rows]
            buf.ravel()[rest_at] = ordered[rest_rows]
            out.append((ordered, stack))
        return layout, out
