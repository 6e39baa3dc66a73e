"""Readings/s of the wire encoder against the variants it was chosen over (not a test).

    .venv/bin/python -m benchmarks.encode_variants [rows] [rounds]

Prints one JSON object: readings/s per variant on a batch of `rows` readings of 100 interleaved
sensors with `normalized` and `moving_avg` columns (and the kept encoder without the columns).
Every variant's output is checked equal to the kept encoder's before it is timed; the best of
`rounds` interleaved rounds is reported, so a busy machine skews all variants alike.
"""

from __future__ import annotations

import datetime as dt
import sys
import timeit
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import orjson

from daemon.batch import Batch
from daemon.sensors import SENSORS
from daemon.sinks.encode import encode_batch, ts_cells

NUMPY = orjson.OPT_SERIALIZE_NUMPY


def workload(rows: int) -> Batch:
    rng = np.random.default_rng(1)
    sensors = [SENSORS.intern(f"B{i:04d}", "celsius") for i in range(100)]
    return Batch.from_columns(
        sensor=rng.choice(sensors, rows),
        seq=np.arange(rows) + 10**6,
        ts=1.79e9 + np.arange(rows) * 0.001 + rng.random(rows) * 1e-3,
        value=np.round(rng.normal(50, 10, rows), 2),
        stale=rng.random(rows) < 0.01,
        columns={"normalized": rng.random(rows), "moving_avg": rng.normal(50, 3, rows)},
    )


def dict_per_reading(batch: Batch) -> bytes:
    """The obvious way: a dict per reading, `datetime` for ts, orjson per line."""
    lines = []
    for rec in batch.to_records():
        stamp = dt.datetime.fromtimestamp(rec["ts"], dt.UTC).isoformat(timespec="microseconds")
        rec["ts"] = stamp.replace("+00:00", "Z")
        lines.append(orjson.dumps({"kind": "reading", **rec}) + b"\n")
    return b"".join(lines)


def format_per_line(batch: Batch) -> bytes:
    """Vectorised cells (as the kept encoder), then one bytes %-format per line."""

    def numbers(column: npt.ArrayLike) -> list[bytes]:
        return orjson.dumps(np.ascontiguousarray(column), option=NUMPY)[1:-1].split(b",")

    ids = [orjson.dumps(s) for s in SENSORS.ids_array()]
    units = [orjson.dumps(u) for u in SENSORS.units_array()]
    heads = np.array([b'{"kind":"reading","sensor_id":%s,"seq":' % i for i in ids], dtype=object)
    tails = np.array(
        [b',"unit":%s,"quality":"%s"' % (u, q) for u in units for q in (b"ok", b"stale")],
        dtype=object,
    )
    keys = b"".join(b',"%s":%%s' % name.encode() for name in batch.columns)
    template = b"%s%s%s%s%s" + keys + b"}\n"
    rows = zip(
        heads[batch.sensor].tolist(),
        numbers(batch.seq),
        ts_cells(batch.ts),
        numbers(batch.value),
        tails[batch.sensor * 2 + batch.stale].tolist(),
        *(numbers(c) for c in batch.columns.values()),
        strict=True,
    )
    return b"".join([template % row for row in rows])


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 4096
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    batch = workload(rows)
    bare = Batch.from_columns(batch.sensor, batch.seq, batch.ts, batch.value, batch.stale)
    variants: dict[str, Callable[[], bytes]] = {
        "dict_per_reading": lambda: dict_per_reading(batch),
        "format_per_line": lambda: format_per_line(batch),
        "kept_cells_join": lambda: encode_batch(batch),
        "kept_cells_join_no_columns": lambda: encode_batch(bare),
    }
    expected = encode_batch(batch)
    for name, fn in variants.items():
        assert name.endswith("no_columns") or fn() == expected, name
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(rounds):
        for name, fn in variants.items():
            number = 1 if name == "dict_per_reading" else 5
            best[name] = min(best[name], min(timeit.repeat(fn, number=number, repeat=3)) / number)
    report = {
        name: {"readings_per_s": round(rows / t), "ns_per_reading": round(t / rows * 1e9)}
        for name, t in best.items()
    }
    print(orjson.dumps({"rows": rows, "variants": report}, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
