"""`moving_average`: the mean of each sensor's last `window` values, to 6 decimal places.

Rounded (`rint(x * 1e6) / 1e6`, half to even) for the same reason as `normalize`: a value on
that grid prints exactly in a few characters, and no reading is that precise anyway.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from daemon.batch import Batch, FloatArray
from daemon.components import Stage
from daemon.config.fields import Range
from daemon.runtime import ComponentContext
from daemon.stages.windows.grouping import carried, round6, runs_of
from daemon.stages.windows.sliding import SUM, SlidingWindows


@dataclass(frozen=True)
class MovingAverageConfig:
    """The `moving_average` stage's keys."""

    window: Annotated[
        int, Range(ge=1, le=100_000), "readings per sensor (the current one included) averaged"
    ] = 10


class MovingAverage(Stage[MovingAverageConfig], name="moving_average"):
    """Adds `moving_avg` = the mean of the sensor's last `window` values (current included),
    rounded to 6 decimal places."""

    def __init__(self, config: MovingAverageConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.windows = carried(
            ctx.carry,
            "moving_average.windows",
            SlidingWindows,
            lambda: SlidingWindows(config.window, (SUM,)),
            window=config.window,
        )

    async def process(self, batches: AsyncIterator[Batch]) -> AsyncIterator[Batch]:
        async for batch in batches:
            if len(batch) or batch.derived:  # an empty batch only travels for its derived records
                batch.columns["moving_avg"] = self.moving_avg(batch)
                yield batch

    def moving_avg(self, batch: Batch) -> FloatArray:
        """The column for `batch`, advancing every sensor's window past it."""
        rows = self.windows.push(batch.sensor, batch.value, runs_of(batch))
        (total,) = rows.reduced
        return round6(total / rows.counts)
