"""Every field on the wire is the reading's own (issue 9, item 10): its unit even when its sensor
id was seen with another unit first, its value, and never `-0.0` (window columns that round to
zero, and any float column on every path of the number printer)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.batch import Batch
from daemon.sensors import SENSORS, SensorTable
from daemon.stages.windows.grouping import round6
from daemon.wire import WireEncoder
from daemon.wire.ahead import EncodeAhead
from daemon.wire.encode import encode_batch, wire_bytes

IDS = ["S1", "S2", 'weird "id"\n']
UNITS = ["celsius", "kelvin", "", "µ/s"]
values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([-0.0, 0.0, -1e-7, -4e-7, 1e-7, -5e-7]),
    st.builds(lambda u: u / 1000, st.integers(-(10**9), 10**9)),
)
Reading = tuple[str, str, float, float]  # sensor_id, unit, value, a window column's raw value
readings = st.lists(
    st.tuples(st.sampled_from(IDS), st.sampled_from(UNITS), values, values),
    min_size=1,
    max_size=50,
)


def own(x: float) -> float | None:
    """What the wire must say for `x`: itself; null for NaN and infinities; 0.0 for -0.0."""
    return x + 0.0 if math.isfinite(x) else None


def assert_own_fields(lines: list[bytes], rows: list[Reading], rounded: Any) -> None:
    assert len(lines) == len(rows)
    for line, (sensor_id, unit, value, _), norm in zip(lines, rows, rounded, strict=True):
        assert b"-0.0," not in line and b"-0.0}" not in line, line
        got = orjson.loads(line)
        assert (got["sensor_id"], got["unit"]) == (sensor_id, unit)
        assert got["value"] == own(value)
        assert got["normalized"] == own(float(norm))
        for key in ("value", "normalized"):
            if got[key] == 0.0:
                assert math.copysign(1.0, got[key]) == 1.0


@settings(max_examples=200, deadline=None)
@given(readings)
def test_every_field_on_the_wire_is_the_readings_own(rows: list[Reading]) -> None:
    table = SensorTable()
    sensor = table.intern_all([r[0] for r in rows], [r[1] for r in rows])
    with np.errstate(over="ignore", invalid="ignore"):  # huge values round to inf
        rounded = round6(np.array([r[3] for r in rows], dtype=np.float64))
    batch = Batch.from_columns(
        sensor,
        np.arange(len(rows)),
        np.full(len(rows), 1.7e9),
        [r[2] for r in rows],
        columns={"normalized": rounded},
    )
    lines = WireEncoder(table).encode(batch).splitlines()
    assert_own_fields(lines, rows, rounded)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=True), min_size=1, max_size=40))
def test_round6_never_makes_negative_zero_and_changes_nothing_else(xs: list[float]) -> None:
    column = np.array(xs, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = np.rint(column * 1e6) / 1e6
        got = round6(column.copy())
    assert not np.signbit(got[got == 0]).any()
    same = (got == expected) | (np.isnan(got) & np.isnan(expected))
    assert same.all()


def test_one_sensor_id_in_two_units_is_two_entries() -> None:
    table = SensorTable()
    celsius, kelvin = table.intern("T1", "celsius"), table.intern("T1", "kelvin")
    assert celsius != kelvin
    assert table.intern("T1", "celsius") == celsius
    assert [table.unit(i) for i in (celsius, kelvin)] == ["celsius", "kelvin"]
    assert [table.sensor_id(i) for i in (celsius, kelvin)] == ["T1", "T1"]
    assert table.ids_array().tolist() == ["T1", "T1"]
    assert table.units_array().tolist() == ["celsius", "kelvin"]
    index = table.intern_all(["T1", "T2", "T1", "T1"], ["kelvin", "kelvin", "celsius", "kelvin"])
    assert index.tolist() == [kelvin, 2, celsius, kelvin]
    assert index.dtype == np.int32


async def test_the_encoder_child_keeps_each_readings_unit() -> None:
    """The child mirrors the table as `(sensor_id, unit)` pairs, so its indices are the
    parent's: a kelvin reading after a celsius one of the same id comes out kelvin there too."""
    first = Batch.of_sensor("WF-T1", [0, 1], [1.7e9] * 2, [20.0, -0.0], unit="celsius")
    second = Batch.of_sensor("WF-T1", [2, 3], [1.7e9] * 2, [293.15, 0.0], unit="kelvin")
    assert int(first.sensor[0]) != int(second.sensor[0])
    assert SENSORS.unit(int(second.sensor[0])) == "kelvin"

    async def feed() -> Any:
        for b in (first, second):
            yield b

    ahead = EncodeAhead(1)
    ahead.start()
    try:
        got = []
        async for b in ahead.stream(feed()):
            view = wire_bytes(b)
            assert view is not None
            got.append(bytes(view))
    finally:
        await ahead.close()
    assert got == [encode_batch(first), encode_batch(second)]
    units = [orjson.loads(line)["unit"] for line in b"".join(got).splitlines()]
    assert units == ["celsius", "celsius", "kelvin", "kelvin"]
    assert b"-0.0" not in b"".join(got)
