"""`normalize`: each reading's position within its sensor's recent range, in [0, 1].

Rounded to 6 decimal places (`rint(x * 1e6) / 1e6`, half to even): a millionth of the range is
finer than any sensor resolves, and a value on that grid prints exactly in a few characters,
which the wire encoder turns into text without a round-trip search (see sinks.wire_numbers).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import numpy as np

from daemon.batch import Batch, FloatArray
from daemon.components import Stage
from daemon.config.fields import Range
from daemon.runtime import ComponentContext
from daemon.stages.windows.grouping import carried, round6, runs_of
from daemon.stages.windows.sliding import MAX, MIN, SlidingWindows


@dataclass(frozen=True)
class NormalizeConfig:
    """The `normalize` stage's keys."""

    window: Annotated[
        int,
        Range(ge=1, le=100_000),
        "readings per sensor (the current one included) that set min and max",
    ] = 50


class Normalize(Stage[NormalizeConfig], name="normalize"):
    """Adds `normalized` = (v - min) / (max - min) over the sensor's last `window` values (0.0
    when max == min), rounded to 6 decimal places."""

    def __init__(self, config: NormalizeConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.windows = carried(
            ctx.carry,
            "normalize.windows",
            SlidingWindows,
            lambda: SlidingWindows(config.window, (MIN, MAX)),
            window=config.window,
        )

    async def process(self, batches: AsyncIterator[Batch]) -> AsyncIterator[Batch]:
        async for batch in batches:
            if len(batch) or batch.derived:  # an empty batch only travels for its derived records
                batch.columns["normalized"] = self.normalized(batch)
                yield batch

    def normalized(self, batch: Batch) -> FloatArray:
        """The column for `batch`, advancing every sensor's window past it."""
        lo, hi = self.windows.push(batch.sensor, batch.value, runs_of(batch)).reduced
        span = hi - lo
        out = np.zeros(len(batch), dtype=np.float64)
        np.divide(batch.value - lo, span, out=out, where=span > 0)
        return round6(out)
