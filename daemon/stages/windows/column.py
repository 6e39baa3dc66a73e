"""The shape of a window stage that adds one column: each sensor's last `window` values, pushed
through `SlidingWindows` with the reductions the column needs, the column computed from them.

`normalize` and `moving_average` are this and a formula; the windows live in `ctx.carry`, so a
pipeline rebuilt on reload continues each sensor's window (and starts afresh when the window
size changed).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar, Protocol, TypeVar

from daemon.batch import Batch, FloatArray
from daemon.components import Stage
from daemon.runtime import ComponentContext
from daemon.stages.windows.grouping import carried, round6, runs_of
from daemon.stages.windows.sliding import Reduction, SlidingWindows, WindowRows


class HasWindow(Protocol):
    @property
    def window(self) -> int: ...


WindowConfigT = TypeVar("WindowConfigT", bound=HasWindow)


class WindowColumnStage(Stage[WindowConfigT]):
    """Adds `column`, computed by `compute(batch, rows)` over the sensors' sliding windows."""

    column: ClassVar[str]
    reductions: ClassVar[tuple[Reduction, ...]]

    def __init__(self, config: WindowConfigT, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        window = config.window
        self.windows = carried(
            ctx.carry,
            f"{self.name}.windows",
            SlidingWindows,
            lambda: SlidingWindows(window, self.reductions),
            window=window,
        )

    async def process(self, batches: AsyncIterator[Batch]) -> AsyncIterator[Batch]:
        async for batch in batches:
            if len(batch) or batch.derived:  # an empty batch only travels for its derived records
                rows = self.windows.push(batch.sensor, batch.value, runs_of(batch))
                batch.columns[self.column] = round6(self.compute(batch, rows))
                yield batch

    def compute(self, batch: Batch, rows: WindowRows) -> FloatArray:
        """The column (before rounding to 6 places) from the windows advanced past `batch`."""
        raise NotImplementedError
