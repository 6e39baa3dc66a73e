"""`normalize`: each reading's position within its sensor's recent range, in [0, 1].

Rounded to 6 decimal places (`rint(x * 1e6) / 1e6`, half to even): a millionth of the range is
finer than any sensor resolves, and a value on that grid prints exactly in a few characters,
which the wire encoder turns into text without a round-trip search (see daemon/wire/numbers.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np

from daemon.batch import Batch, FloatArray
from daemon.config.fields import Range
from daemon.stages.windows.column import WindowColumnStage
from daemon.stages.windows.sliding import MAX, MIN, WindowRows


@dataclass(frozen=True)
class NormalizeConfig:
    """The `normalize` stage's keys."""

    window: Annotated[
        int,
        Range(ge=1, le=100_000),
        "readings per sensor (the current one included) that set min and max",
    ] = 50


class Normalize(WindowColumnStage[NormalizeConfig], name="normalize"):
    """Adds `normalized` = (v - min) / (max - min) over the sensor's last `window` values (0.0
    when max == min), rounded to 6 decimal places."""

    column = "normalized"
    reductions = (MIN, MAX)

    def compute(self, batch: Batch, rows: WindowRows) -> FloatArray:
        lo, hi = rows.reduced
        span = hi - lo
        out = np.zeros(len(batch), dtype=np.float64)
        np.divide(batch.value - lo, span, out=out, where=span > 0)
        return out
