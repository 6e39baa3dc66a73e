"""Per-sensor tumbling windows of `window` readings for `features`: the blocks of `BlockBuffer`,
with each completed window's sensor, end seq and the batch row that completed it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from daemon.batch import FloatArray, IntArray, SensorArray
from daemon.stages.features.blocks import BlockBuffer
from daemon.stages.windows.grouping import SortedRuns


@dataclass(frozen=True, slots=True)
class Completed:
    """The windows one batch completed, ordered by the batch row that completed each.

    `sensor[j]`, `end_seq[j]` (the seq of the window's last reading) and `end_row[j]` (that
    reading's row in the batch) describe window j; `values[j]` and `ts[j]` are its readings.
    """

    sensor: SensorArray
    end_seq: IntArray
    end_row: IntArray
    values: FloatArray
    ts: FloatArray

    def __len__(self) -> int:
        return int(self.sensor.shape[0])


class TumblingWindows:
    """Every sensor's open window of values and their ts."""

    def __init__(self, window: int) -> None:
        self.window = window
        self._blocks = BlockBuffer(window, channels=2)

    def push(
        self,
        sensor: SensorArray,
        seq: IntArray,
        ts: FloatArray,
        value: FloatArray,
        runs: SortedRuns | None = None,
    ) -> Completed:
        """Add a batch's readings to their sensors' open windows; return the completed ones.
        `runs`: `sorted_runs(sensor)`, if the caller has it already."""
        if sensor.shape[0] == 0:
            return _none(self.window)
        layout, [(_, values), (_, times)] = self._blocks.push(sensor, value, ts, runs=runs)
        if layout.k == 0:
            return _none(self.window)
        # The rows that complete a block, in stack order (by sensor, then block) ...
        ends = np.flatnonzero(layout.in_done & (layout.slot == self.window - 1))
        end_row = layout.groups.batch_rows(ends)
        # ... reordered by batch row, so records follow the stream.
        by_row = np.argsort(end_row, kind="stable")
        end_row = end_row[by_row]
        return Completed(
            sensor=sensor[end_row],
            end_seq=seq[end_row],
            end_row=end_row,
            values=values[by_row],
            ts=times[by_row],
        )


def _none(w: int) -> Completed:
    return Completed(
        sensor=np.empty(0, dtype=np.int32),
        end_seq=np.empty(0, dtype=np.int64),
        end_row=np.empty(0, dtype=np.int64),
        values=np.empty((0, w), dtype=np.float64),
        ts=np.empty((0, w), dtype=np.float64),
    )
