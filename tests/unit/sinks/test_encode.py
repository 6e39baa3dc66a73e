"""The wire encoder against a slow, obviously right reference: a dict per reading through
orjson, with `ts` formatted by `datetime`. Bytes must match exactly, and every line must parse
back to the reading (floats round-trip, NaN/inf become null)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.batch import Batch
from daemon.components import PermanentSinkError
from daemon.sensors import SensorTable
from daemon.wire import WireEncoder, encode_batch, encode_derived, encode_for_sink
from daemon.wire.encode import ts_cells

MIN_TS = -62_135_596_800.0  # 0001-01-01T00:00:00Z
MAX_TS = 253_402_300_799.0  # 9999-12-31T23:59:59Z


def iso(ts: float) -> str:
    stamp = dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="microseconds")
    return stamp.replace("+00:00", "Z")


def finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def reference_dicts(batch: Batch, table: SensorTable) -> list[dict[str, Any]]:
    out = []
    for i in range(len(batch)):
        s = int(batch.sensor[i])
        rec: dict[str, Any] = {
            "kind": "reading",
            "sensor_id": table.sensor_id(s),
            "seq": int(batch.seq[i]),
            "ts": iso(float(batch.ts[i])),
            "value": float(batch.value[i]) + 0.0,  # -0.0 prints as 0.0
            "unit": table.unit(s),
            "quality": "stale" if batch.stale[i] else "ok",
        }
        for name, column in batch.columns.items():
            rec[name] = float(column[i]) + 0.0
        out.append(rec)
    return out


def reference(batch: Batch, table: SensorTable) -> bytes:
    lines = [orjson.dumps(r) + b"\n" for r in reference_dicts(batch, table)]
    lines += [orjson.dumps(d) + b"\n" for d in batch.derived]
    return b"".join(lines)


def assert_matches(batch: Batch, table: SensorTable, got: bytes) -> None:
    assert got == reference(batch, table)
    lines = got.splitlines()
    expected = reference_dicts(batch, table)
    assert len(lines) == len(expected) + len(batch.derived)
    for line, rec in zip(lines, expected, strict=False):
        parsed = orjson.loads(line)
        assert list(parsed) == list(rec)  # key order: the wire order, columns as inserted
        for key, want in rec.items():
            if isinstance(want, float):
                assert parsed[key] == finite_or_none(want)  # exact: floats round-trip
                if want == 0.0:
                    assert math.copysign(1.0, parsed[key]) == 1.0  # never -0.0
            else:
                assert parsed[key] == want


# -- hypothesis batches --------------------------------------------------------------------

names = st.text(min_size=1, max_size=12)
any_float = st.floats(allow_nan=True, allow_infinity=True)
ts_float = st.one_of(
    st.floats(min_value=MIN_TS, max_value=MAX_TS),
    st.floats(min_value=1.7e9, max_value=1.9e9),  # today-ish: the common case
)


@st.composite
def batches(draw: st.DrawFn) -> tuple[Batch, SensorTable]:
    table = SensorTable()
    ids = draw(st.lists(names, min_size=1, max_size=20, unique=True))
    for sensor_id in ids:
        table.intern(sensor_id, draw(st.sampled_from(["celsius", "", 'q"uote', "µ/s\n"])))
    n = draw(st.integers(0, 40))
    col_names = draw(st.lists(names.filter(lambda s: s != "kind"), max_size=3, unique=True))
    rows = st.integers(0, len(ids) - 1)
    batch = Batch.from_columns(
        sensor=draw(st.lists(rows, min_size=n, max_size=n)),
        seq=draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n)),
        ts=draw(st.lists(ts_float, min_size=n, max_size=n)),
        value=draw(st.lists(any_float, min_size=n, max_size=n)),
        stale=draw(st.lists(st.booleans(), min_size=n, max_size=n)),
        columns={name: draw(st.lists(any_float, min_size=n, max_size=n)) for name in col_names},
    )
    scalar = st.one_of(st.integers(-(2**53), 2**53), any_float, names, st.none())
    batch.derived = draw(st.lists(st.dictionaries(names, scalar, max_size=4), max_size=3))
    return batch, table


@settings(max_examples=100, deadline=None)
@given(batches())
def test_encoding_matches_reference(case: tuple[Batch, SensorTable]) -> None:
    batch, table = case
    assert_matches(batch, table, WireEncoder(table).encode(batch))


@settings(max_examples=100, deadline=None)
@given(st.lists(ts_float, min_size=1, max_size=50))
def test_ts_is_datetime_formatting(ts: list[float]) -> None:
    cells = ts_cells(np.array(ts))
    assert cells == [f',"ts":"{iso(t)}","value":'.encode() for t in ts]


# -- specific cases ------------------------------------------------------------------------


def test_ts_rounds_like_datetime_at_the_edges() -> None:
    ts = [
        1.9999995,  # rounds up into the next second
        0.5e-6,  # half a microsecond: half to even -> 0
        1.5e-6,  # -> 2
        -0.5,  # before the epoch
        -1e-7,  # rounds to the epoch itself
        1_795_301_303.123456,
        1_795_301_303.0,  # micros printed even when zero
        MIN_TS,
        MAX_TS,
    ]
    assert ts_cells(np.array(ts)) == [f',"ts":"{iso(t)}","value":'.encode() for t in ts]


def test_ts_spread_over_years_uses_distinct_seconds() -> None:
    ts = np.array([1e9, 5e9, 1.7e9, 1e9 + 0.25, 2e8] * 2000)  # a span far wider than the rows
    assert ts_cells(ts) == [f',"ts":"{iso(t)}","value":'.encode() for t in ts.tolist()]


@pytest.mark.parametrize("bad", [math.nan, math.inf, MAX_TS + 1.0, MIN_TS - 1.0])
def test_unencodable_ts_is_a_permanent_error(bad: float) -> None:
    batch = Batch.of_sensor("enc-bad-ts", [1, 2], [1.7e9, bad], [1.0, 2.0])
    with pytest.raises(ValueError, match="ts"):
        encode_batch(batch)
    with pytest.raises(PermanentSinkError, match="cannot encode"):
        encode_for_sink(batch)


def test_derived_record_orjson_refuses_is_a_permanent_error() -> None:
    batch = Batch.of_sensor("enc-bad-derived", [1], [1.7e9], [1.0])
    batch.derived = [{"kind": "features", "oops": object()}]
    with pytest.raises(PermanentSinkError, match="cannot encode"):
        encode_for_sink(batch)


def test_the_design_example_line() -> None:
    batch = Batch.of_sensor(
        "S0007",
        [1234],
        [dt.datetime(2026, 11, 21, 22, 48, 23, 123456, tzinfo=dt.UTC).timestamp()],
        [51.23],
        unit="celsius",
        columns={"normalized": [0.4312], "moving_avg": [50.88]},
    )
    assert encode_batch(batch) == (
        b'{"kind":"reading","sensor_id":"S0007","seq":1234,"ts":"2026-11-21T22:48:23.123456Z",'
        b'"value":51.23,"unit":"celsius","quality":"ok","normalized":0.4312,"moving_avg":50.88}\n'
    )


def test_many_sensors_interleaved_keep_row_order_and_stale_flags() -> None:
    table = SensorTable()
    for i in range(300):
        table.intern(f"S{i:04d}", "celsius" if i % 2 else "kPa")
    rng = np.random.default_rng(7)
    n = 5000
    batch = Batch.from_columns(
        sensor=rng.integers(0, 300, n),
        seq=np.arange(n) * 7919,
        ts=1.795e9 + np.arange(n) * 1e-4,
        value=rng.normal(50, 20, n),
        stale=rng.random(n) < 0.1,
        columns={"normalized": rng.random(n), "moving_avg": rng.normal(50, 3, n)},
    )
    batch.columns["normalized"][::97] = np.nan
    assert_matches(batch, table, WireEncoder(table).encode(batch))


def test_sensors_added_after_first_encode_are_encoded() -> None:
    table = SensorTable()
    encoder = WireEncoder(table)
    first = Batch.from_columns([table.intern("a", "u1")], [0], [1.7e9], [1.0])
    assert_matches(first, table, encoder.encode(first))
    new = [table.intern(f"late-{i}", "u2") for i in range(5)]
    second = Batch.from_columns(
        [new[4], 0, new[0]], [1, 2, 3], [1.7e9] * 3, [1.0, 2.0, 3.0], columns={"x": [1, 2, 3]}
    )
    assert_matches(second, table, encoder.encode(second))
    assert_matches(first, table, encoder.encode(first))  # the old schema grew too


def test_columns_of_other_dtypes_and_layouts_encode_as_float64() -> None:
    table = SensorTable()
    sid = table.intern("layout", "u")
    n = 10
    wide = np.arange(2 * n, dtype=np.float64) / 3
    batch = Batch.from_columns([sid] * n, np.arange(n), np.full(n, 1.7e9), wide[::2])
    batch.columns["f32"] = np.linspace(0, 1, n, dtype=np.float32)
    batch.columns["strided"] = wide[1::2]
    got = WireEncoder(table).encode(batch)
    batch.columns["f32"] = batch.columns["f32"].astype(np.float64)
    assert_matches(batch, table, got)


def test_empty_batch_is_its_derived_records_only() -> None:
    batch = Batch.from_columns([], [], [], [])
    assert encode_batch(batch) == b""
    batch.derived = [{"kind": "features", "sensor_id": "S1", "mean": np.float64(1.5)}]
    assert encode_batch(batch) == b'{"kind":"features","sensor_id":"S1","mean":1.5}\n'


def test_derived_records_follow_readings_one_line_each() -> None:
    records: list[dict[str, Any]] = [
        {"kind": "features", "std": math.nan, "count": np.int64(256)},
        {"kind": "alert"},
    ]
    assert encode_derived(records) == (
        b'{"kind":"features","std":null,"count":256}\n{"kind":"alert"}\n'
    )
    batch = Batch.of_sensor("enc-derived", [5], [1.7e9], [2.5], unit="V")
    batch.derived = records
    assert encode_batch(batch).splitlines()[1:] == encode_derived(records).splitlines()
