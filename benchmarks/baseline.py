"""The comparison pipelines: the same workload as plain per-record Python generators.

This is how most Python stream code is written: a dict per reading, a generator per stage,
`json.dumps` per record. It is the yardstick the batch design has to beat, run in the same
invocation on the same workload.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

Record = dict[str, Any]


def simulated(sensors: int, per_sensor: int, seed: int = 7) -> Iterator[Record]:
    rng = random.Random(seed)
    base = [20.0 + 60.0 * rng.random() for _ in range(sensors)]
    start = time.time()
    for seq in range(per_sensor):
        for s in range(sensors):
            value = base[s] + 5.0 * math.sin(seq / 50.0) + rng.gauss(0.0, 1.0)
            if rng.random() < 0.05:
                value += rng.choice((-1.0, 1.0)) * 60.0
            yield {
                "kind": "reading",
                "sensor_id": f"S{s:04d}",
                "seq": seq,
                "ts": start + seq / 1000.0,
                "value": value,
                "unit": "celsius",
                "quality": "ok",
            }


def threshold(records: Iterator[Record], lo: float, hi: float) -> Iterator[Record]:
    for r in records:
        if lo <= r["value"] <= hi:
            yield r


def normalize(records: Iterator[Record], window: int) -> Iterator[Record]:
    windows: dict[str, deque[float]] = {}
    for r in records:
        w = windows.setdefault(r["sensor_id"], deque(maxlen=window))
        w.append(r["value"])
        lo, hi = min(w), max(w)
        r["normalized"] = 0.0 if hi == lo else (r["value"] - lo) / (hi - lo)
        yield r


def moving_average(records: Iterator[Record], window: int) -> Iterator[Record]:
    windows: dict[str, deque[float]] = {}
    for r in records:
        w = windows.setdefault(r["sensor_id"], deque(maxlen=window))
        w.append(r["value"])
        r["moving_avg"] = sum(w) / len(w)
        yield r


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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


def orjson_dumps(r: Record) -> bytes:
    return orjson.dumps(r)
