"""`moving_average`: the mean of each sensor's last `window` values, to 6 decimal places.

Rounded (`rint(x * 1e6) / 1e6`, half to even) for the same reason as `normalize`: a value on
that grid prints exactly in a few characters, and no reading is that precise anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from daemon.batch import Batch, FloatArray
from daemon.config.fields import Range
from daemon.stages.windows.column import WindowColumnStage
from daemon.stages.windows.sliding import SUM, WindowRows


@dataclass(frozen=True)
class MovingAverageConfig:
    """The `moving_average` stage's keys."""

    window: Annotated[
        int, Range(ge=1, le=100_000), "readings per sensor (the current one included) averaged"
    ] = 10


class MovingAverage(WindowColumnStage[MovingAverageConfig], name="moving_average"):
    """Adds `moving_avg` = the mean of the sensor's last `window` values (current included),
    rounded to 6 decimal places."""

    column = "moving_avg"
    reductions = (SUM,)

    def compute(self, batch: Batch, rows: WindowRows) -> FloatArray:
        (total,) = rows.reduced
        result: FloatArray = total / rows.counts
        return result
