"""`threshold_filter`: drop readings outside [min, max], counting them as `filtered`."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import numpy as np

from daemon.batch import Batch
from daemon.components import Stage


@dataclass(frozen=True)
class ThresholdFilterConfig:
    """The `threshold_filter` stage's keys."""

    min: Annotated[float, "lowest value kept (inclusive); -inf for no lower bound"]
    max: Annotated[float, "highest value kept (inclusive); inf for no upper bound"]

    def check(self) -> list[tuple[str, str]]:
        for key, value in (("min", self.min), ("max", self.max)):
            if math.isnan(value):
                return [(key, f"must be a number, got {value}")]
        if self.min >= self.max:
            return [("min", f"must be < max ({self.max}), got {self.min}")]
        return []


class ThresholdFilter(Stage[ThresholdFilterConfig], name="threshold_filter"):
    """Keeps readings with min <= value <= max; the rest are dropped and counted `filtered`."""

    async def process(self, batches: AsyncIterator[Batch]) -> AsyncIterator[Batch]:
        lo, hi = self.config.min, self.config.max
        async for batch in batches:
            value = batch.value
            keep = (value >= lo) & (value <= hi)  # NaN compares false: dropped too
            kept = int(np.count_nonzero(keep))
            dropped = len(batch) - kept
            if dropped == 0:
                if kept or batch.derived:
                    yield batch
                continue
            self.ctx.count_filtered(dropped)
            if kept or batch.derived:
                yield batch.select(keep)
