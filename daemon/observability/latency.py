"""End-to-end latency: how old each reading is when every sink has acknowledged it.

Why a fixed-bucket histogram: a p99 over a million readings a second must cost a few numpy
calls per batch, never Python per reading, and bounded memory however long the daemon runs. The
buckets are log-spaced, 8 per octave from 7.6 us to 2.3 hours, and a reading's bucket is read
straight off its float64 bit pattern (exponent and top three mantissa bits: one shift), then
counted with one `np.bincount`. A bucket spans a factor 2^(1/8) ~ 1.09, so a percentile is
within ~9 % of the exact value; the run's maximum is exact.

`ts` is when a reading was taken, in wall-clock epoch seconds, so ages are measured against
`time.time()`. A reading stamped in the future (a clock step) counts in the lowest bucket.

`LatencyHistogram` accumulates for the whole run (it lives in `RunState`, so it carries across
reloads); each consumer that wants per-interval numbers owns a `LatencyWindow` over it, as each
owns a `RateMeter`, so one reader never shortens another's interval.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

_SUB_BITS = 3  # mantissa bits kept: 2**3 = 8 buckets per octave
_SHIFT = 52 - _SUB_BITS
_LOWEST_S = 2.0**-17  # ~7.6 us: anything faster (or negative) lands in bucket 0
_OCTAVES = 30  # up to 2**13 s ~ 2.3 h; older readings land in the top bucket
_BASE = int(np.array([_LOWEST_S]).view(np.int64)[0] >> _SHIFT)
BUCKETS = _OCTAVES * (1 << _SUB_BITS) + 1
# Lower edge of each bucket in seconds; bucket 0 starts at 0, the top one is open-ended.
EDGES_S: npt.NDArray[np.float64] = (
    np.arange(_BASE, _BASE + BUCKETS + 1, dtype=np.int64) << _SHIFT
).view(np.float64)
EDGES_S[0] = 0.0
_LOWEST = np.float64(_LOWEST_S)


@dataclass(frozen=True)
class LatencyStats:
    """Percentiles of an interval's (or the run's) reading ages, in seconds."""

    p50_s: float
    p99_s: float
    max_s: float
    readings: int

    def as_ms(self) -> dict[str, float | int]:
        return {
            "p50": round(self.p50_s * 1e3, 3),
            "p99": round(self.p99_s * 1e3, 3),
            "max": round(self.max_s * 1e3, 3),
            "readings": self.readings,
        }


EMPTY = LatencyStats(0.0, 0.0, 0.0, 0)


class LatencyHistogram:
    """Counts of reading ages per bucket since the run started, and the exact maximum."""

    __slots__ = ("counts", "max_s")

    def __init__(self) -> None:
        self.counts: npt.NDArray[np.int64] = np.zeros(BUCKETS, dtype=np.int64)
        self.max_s = 0.0

    def record(self, ts: npt.NDArray[np.float64], now: float | None = None) -> None:
        """Add the age of every reading stamped `ts`, as of `now` (default: the wall clock)."""
        if ts.shape[0] == 0:
            return
        age = np.subtract(time.time() if now is None else now, ts)
        self.max_s = max(self.max_s, float(age.max()))
        np.maximum(age, _LOWEST, out=age)
        idx = (age.view(np.int64) >> _SHIFT) - _BASE
        np.minimum(idx, BUCKETS - 1, out=idx)
        self.counts += np.bincount(idx, minlength=BUCKETS)

    def stats(self) -> LatencyStats:
        """The whole run so far."""
        return summarize(self.counts, self.max_s)

    def cdf_ms(self) -> list[list[float]]:
        """The whole run's ages as a distribution, for `shutdown_complete` (what a latency CDF
        is drawn from, where percentiles are three points of it): `[upper edge in ms, share of
        readings at most that old]` for each bucket holding any, the last edge capped at the
        exact maximum."""
        total = int(self.counts.sum())
        if total == 0:
            return []
        held = np.flatnonzero(self.counts)
        share = np.cumsum(self.counts)[held] / total
        upper = np.minimum(EDGES_S[held + 1], max(self.max_s, float(EDGES_S[held[-1]])))
        return [
            [round(float(u) * 1e3, 4), round(float(s), 6)]
            for u, s in zip(upper, share, strict=True)
        ]


class LatencyWindow:
    """What was recorded into `histogram` since this window's previous `take()`."""

    def __init__(self, histogram: LatencyHistogram) -> None:
        self.histogram = histogram
        self._seen = histogram.counts.copy()

    def take(self) -> LatencyStats:
        """The interval's percentiles; its max is at bucket resolution (the bucket's upper edge,
        capped by the run's exact maximum)."""
        now = self.histogram.counts.copy()
        delta = now - self._seen
        self._seen = now
        top = np.flatnonzero(delta)
        if top.size == 0:
            return EMPTY
        upper = float(EDGES_S[int(top[-1]) + 1])
        return summarize(delta, min(upper, self.histogram.max_s))


def summarize(counts: npt.NDArray[np.int64], max_s: float) -> LatencyStats:
    total = int(counts.sum())
    if total == 0:
        return EMPTY
    p50, p99 = (min(quantile(counts, q), max_s) for q in (0.5, 0.99))
    return LatencyStats(p50, p99, max_s, total)


def quantile(counts: npt.NDArray[np.int64], q: float) -> float:
    """The `q` quantile of bucketed ages, interpolated geometrically inside its bucket."""
    cum = np.cumsum(counts)
    rank = q * float(cum[-1])
    k = int(np.searchsorted(cum, rank, side="left"))
    k = min(k, counts.shape[0] - 1)
    below = float(cum[k] - counts[k])
    frac = (rank - below) / float(counts[k]) if counts[k] else 1.0
    lo, hi = float(EDGES_S[k]), float(EDGES_S[k + 1])
    if k == 0:
        return hi * frac  # [0, lowest): linear
    if k == counts.shape[0] - 1:
        return lo  # open-ended top bucket: its lower edge (callers cap at the max)
    return float(lo * (hi / lo) ** frac)
