"""`drop_sensors`: drop whole sensors by id prefix, and optionally readings above a cap.

Why a plugin stage would want this: a fleet mixes production sensors with test rigs and
decommissioned ones, whose ids share a prefix (`test-`, `old-`); they should never reach a sink.
The stage shows the two field shapes a plain number or string cannot express: a list
(`prefixes`) and an optional value (`max_value`, absent means "no cap").
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import numpy.typing as npt

from daemon import Batch, Stage
from daemon.runtime import ComponentContext
from daemon.sensors import SENSORS


@dataclass(frozen=True)
class DropSensorsConfig:
    """The `drop_sensors` stage's keys."""

    prefixes: Annotated[list[str], "sensor id prefixes whose readings are dropped"]
    max_value: Annotated[float | None, "readings above this are dropped too; absent: no cap"] = None

    def check(self) -> list[tuple[str, str]]:
        # An empty prefix matches every id: almost surely a typo that would drop everything.
        if any(p == "" for p in self.prefixes):
            return [("prefixes", "must not contain an empty prefix (it matches every sensor)")]
        return []


class DropSensors(Stage[DropSensorsConfig], name="drop_sensors"):
    """Drops sensors by id prefix, and readings above max_value if set (counted `filtered`).

    Every dropped reading is counted `filtered`, so the run's counters still reconcile
    (`read == written + filtered + rejected + spooled`).

    A batch holds sensor indices, not ids (see `daemon.sensors`), so the prefix test runs once
    per sensor, not per reading: a boolean per index, extended when new sensors appear (the
    sensor table only grows), then gathered by the batch's `sensor` column.
    """

    def __init__(self, config: DropSensorsConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self._prefixes = tuple(config.prefixes)
        self._dropped: npt.NDArray[np.bool_] = np.zeros(0, dtype=np.bool_)

    def _dropped_sensors(self) -> npt.NDArray[np.bool_]:
        """Whether each sensor index is dropped, for every sensor interned so far."""
        known = len(self._dropped)
        if known < len(SENSORS):
            ids = (SENSORS.sensor_id(i) for i in range(known, len(SENSORS)))
            new = np.fromiter((i.startswith(self._prefixes) for i in ids), dtype=np.bool_)
            self._dropped = np.concatenate([self._dropped, new])
        return self._dropped

    async def process(self, batches: AsyncIterator[Batch]) -> AsyncIterator[Batch]:
        cap = self.config.max_value
        async for batch in batches:
            drop = self._dropped_sensors()[batch.sensor]
            if cap is not None:
                drop |= batch.value > cap  # NaN compares false: kept, as no cap can judge it
            dropped = int(np.count_nonzero(drop))
            if dropped == 0:
                yield batch
                continue
            self.ctx.count_filtered(dropped)
            if dropped < len(batch) or batch.derived:
                yield batch.select(~drop)  # derived records (features) ride on, even if empty
