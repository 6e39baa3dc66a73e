"""Readings/s of the wire encoder against the variants it was chosen over (not a test).

    .venv/bin/python -m benchmarks.encode_variants [rows] [rounds]

Prints one JSON object: readings/s per variant on a batch of `rows` readings of 100 interleaved
sensors, as the default chain makes them (readings to 0.001, `normalized` and `moving_avg` to 6
decimal places), and the kept encoder once more on unrounded floats (its orjson fallback).
Every variant's output is checked equal to the kept encoder's before it is timed; the best of
`rounds` interleaved rounds of CPU time is reported, so a busy machine skews all variants alike.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import orjson

from daemon.batch import Batch
from daemon.sensors import SENSORS
from daemon.topology.memory import keep_freed_memory
from daemon.wire.encode import encode_batch, ts_cells

NUMPY = orjson.OPT_SERIALIZE_NUMPY


def workload(rows: int, rounded: bool = True) -> Batch:
    rng = np.random.default_rng(1)
    sensors = [SENSORS.intern(f"B{i:04d}", "celsius") for i in range(100)]
    value, normalized, mean = rng.uniform(10, 99, rows), rng.random(rows), rng.normal(50, 3, rows)
    if rounded:
        value, normalized, mean = np.round(value, 3), np.round(normalized, 6), np.round(mean, 6)
    return Batch.from_columns(
        sensor=rng.choice(sensors, rows),
        seq=np.arange(rows) + 10**6,
        ts=1.79e9 + np.arange(rows) * 0.001 + rng.random(rows) * 1e-3,
        value=value,
        stale=rng.random(rows) < 0.01,
        columns={"normalized": normalized, "moving_avg": mean},
    )


def dict_per_reading(batch: Batch) -> bytes:
    """The obvious way: a dict per reading, `datetime` for ts, orjson per line."""
    lines = []
    for rec in batch.to_records():
        stamp = dt.datetime.fromtimestamp(rec["ts"], dt.UTC).isoformat(timespec="microseconds")
        rec["ts"] = stamp.replace("+00:00", "Z")
        lines.append(orjson.dumps({"kind": "reading", **rec}) + b"\n")
    return b"".join(lines)


def _numbers(column: npt.ArrayLike) -> list[bytes]:
    return orjson.dumps(np.ascontiguousarray(column), option=NUMPY)[1:-1].split(b",")


def _sensor_cells(batch: Batch) -> tuple[list[bytes], list[bytes]]:
    ids = [orjson.dumps(s) for s in SENSORS.ids_array()]
    units = [orjson.dumps(u) for u in SENSORS.units_array()]
    heads = np.array([b'{"kind":"reading","sensor_id":%s,"seq":' % i for i in ids], dtype=object)
    tails = np.array(
        [b',"unit":%s,"quality":"%s"' % (u, q) for u in units for q in (b"ok", b"stale")],
        dtype=object,
    )
    return heads[batch.sensor].tolist(), tails[batch.sensor * 2 + batch.stale].tolist()


def format_per_line(batch: Batch) -> bytes:
    """Cells per column (orjson numbers cut at the commas), then one bytes %-format per line."""
    heads, tails = _sensor_cells(batch)
    keys = b"".join(b',"%s":%%s' % name.encode() for name in batch.columns)
    template = b"%s%s%s%s%s" + keys + b"}\n"
    rows = zip(
        heads,
        _numbers(batch.seq),
        ts_cells(batch.ts),
        _numbers(batch.value),
        tails,
        *(_numbers(c) for c in batch.columns.values()),
        strict=True,
    )
    return b"".join([template % row for row in rows])


def cells_join(batch: Batch) -> bytes:
    """The encoder before this one: the same cells interleaved in one list, joined once."""
    n = len(batch)
    heads, tails = _sensor_cells(batch)
    columns = list(batch.columns.values())
    keys = [b',"%s":' % name.encode() for name in batch.columns]
    width = 5 + 2 * len(columns) + 1
    cells: list[bytes] = [b""] * (n * width)
    cells[0::width] = heads
    cells[1::width] = _numbers(batch.seq)
    cells[2::width] = ts_cells(batch.ts)
    cells[3::width] = _numbers(batch.value)
    cells[4::width] = tails
    for j, column in enumerate(columns):
        cells[5 + 2 * j :: width] = [keys[j]] * n
        cells[6 + 2 * j :: width] = _numbers(column)
    cells[width - 1 :: width] = [b"}\n"] * n
    return b"".join(cells)


def main() -> None:
    keep_freed_memory()  # as the daemon does (see daemon/topology/memory.py)
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 8192
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    batch, raw = workload(rows), workload(rows, rounded=False)
    variants: dict[str, Callable[[], bytes]] = {
        "dict_per_reading": lambda: dict_per_reading(batch),
        "format_per_line": lambda: format_per_line(batch),
        "cells_join": lambda: cells_join(batch),
        "numpy_words (kept)": lambda: encode_batch(batch),
        "numpy_words, unrounded floats": lambda: encode_batch(raw),
    }
    expected = encode_batch(batch)
    for name, fn in variants.items():
        assert name.endswith("floats") or fn() == expected, name
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(rounds):
        for name, fn in variants.items():
            number = 1 if name == "dict_per_reading" else 5
            start = time.process_time()
            for _ in range(number):
                fn()
            best[name] = min(best[name], (time.process_time() - start) / number)
    report = {
        name: {"readings_per_s": round(rows / t), "ns_per_reading": round(t / rows * 1e9)}
        for name, t in best.items()
    }
    print(orjson.dumps({"rows": rows, "variants": report}, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
