"""The comparison pipelines: the same workload as plain per-record Python generators.

This is how most Python stream code is written: a dict per reading, a generator per stage,
`json.dumps` per record. It is the yardstick the batch design has to beat, run in the same
invocation on the same workload, so it is written as well as plain per-record Python allows,
not as a straw man: the sliding min/max are monotonic deques (amortised O(1) per reading;
`min(w), max(w)` over a 50-deque cost ~5 us a reading here, most of the chain), timestamps are
formatted with `isoformat` (~4x cheaper than `strftime`). It computes what the daemon computes
(`normalized` over the last 50 values including the current one, `moving_avg` over 10).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

Record = dict[str, Any]


def simulated(sensors: int, per_sensor: int, seed: int = 7) -> Iterator[Record]:
    """Drift, noise and 5 % spikes, at the daemon's default resolution of 3 decimals."""
    rng = random.Random(seed)
    base = [20.0 + 60.0 * rng.random() for _ in range(sensors)]
    ids = [f"S{s:04d}" for s in range(sensors)]
    start = time.time()
    for seq in range(per_sensor):
        drift = 5.0 * math.sin(seq / 50.0)
        for s in range(sensors):
            value = base[s] + drift + rng.gauss(0.0, 1.0)
            if rng.random() < 0.05:
                value += rng.choice((-1.0, 1.0)) * 60.0
            yield {
                "kind": "reading",
                "sensor_id": ids[s],
                "seq": seq,
                "ts": start + seq / 1000.0,
                "value": round(value, 3),
                "unit": "celsius",
                "quality": "ok",
            }


def threshold(records: Iterator[Record], lo: float, hi: float) -> Iterator[Record]:
    for r in records:
        if lo <= r["value"] <= hi:
            yield r


class SlidingRange:
    """Min and max of the last `window` values: two monotonic deques of (position, value)."""

    __slots__ = ("highs", "lows", "n", "window")

    def __init__(self, window: int) -> None:
        self.window = window
        self.n = 0
        self.lows: deque[tuple[int, float]] = deque()
        self.highs: deque[tuple[int, float]] = deque()

    def push(self, v: float) -> tuple[float, float]:
        n, lows, highs = self.n, self.lows, self.highs
        while lows and lows[-1][1] >= v:
            lows.pop()
        lows.append((n, v))
        while highs and highs[-1][1] <= v:
            highs.pop()
        highs.append((n, v))
        oldest = n - self.window
        if lows[0][0] <= oldest:
            lows.popleft()
        if highs[0][0] <= oldest:
            highs.popleft()
        self.n = n + 1
        return lows[0][1], highs[0][1]


def normalize(records: Iterator[Record], window: int) -> Iterator[Record]:
    ranges: dict[str, SlidingRange] = {}
    for r in records:
        sensor = r["sensor_id"]
        rng = ranges.get(sensor)
        if rng is None:
            rng = ranges[sensor] = SlidingRange(window)
        v = r["value"]
        lo, hi = rng.push(v)
        r["normalized"] = 0.0 if hi == lo else (v - lo) / (hi - lo)
        yield r


def moving_average(records: Iterator[Record], window: int) -> Iterator[Record]:
    windows: dict[str, deque[float]] = {}
    for r in records:
        w = windows.setdefault(r["sensor_id"], deque(maxlen=window))
        w.append(r["value"])
        r["moving_avg"] = sum(w) / len(w)
        yield r


class IsoTime:
    """`2026-11-21T22:48:23.123456Z`, as the daemon writes it; the text up to the second is
    formatted once per second (a datetime per reading costs ~2 us here)."""

    def __init__(self) -> None:
        self.second = -1
        self.prefix = ""

    def __call__(self, ts: float) -> str:
        second, micros = divmod(round(ts * 1e6), 1_000_000)
        if second != self.second:
            self.second = second
            self.prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self.prefix}.{micros:06d}Z"


def run_chain(
    out: Path, sensors: int, per_sensor: int, dumps: Callable[[Record], str | bytes]
) -> dict[str, float]:
    """The per-record chain end to end; returns readings/s and counts."""
    started = time.perf_counter()
    written = 0
    binary = isinstance(dumps({}), bytes)
    with out.open("wb" if binary else "w") as fh:
        chain = moving_average(
            normalize(threshold(simulated(sensors, per_sensor), 10.0, 100.0), 50), 10
        )
        iso = IsoTime()
        for r in chain:
            r["ts"] = iso(r["ts"])
            line = dumps(r)
            fh.write(line + (b"\n" if binary else "\n"))  # type: ignore[operator]
            written += 1
    elapsed = time.perf_counter() - started
    total = sensors * per_sensor
    return {"readings": total, "written": written, "seconds": elapsed, "rate": total / elapsed}


def json_dumps(r: Record) -> str:
    return json.dumps(r, separators=(",", ":"))
