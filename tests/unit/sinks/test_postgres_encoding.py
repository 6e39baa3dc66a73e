"""The postgres sink's encodings without a server: the binary COPY payload read back by a
parser written from PostgreSQL's format description, the timestamps against `datetime`, the rows
refused before any COPY, derived records' conversions, the config's checks, the isolation SQL."""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from daemon.batch import Batch
from daemon.config.types import Secret
from daemon.sinks.postgres import PostgresConfig, pgcopy, rows
from daemon.sinks.postgres.schema import isolate

_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_DECODE: dict[str, Callable[[bytes], Any]] = {
    "seq": lambda b: struct.unpack(">q", b)[0],
    "ts": lambda b: _PG_EPOCH + timedelta(microseconds=struct.unpack(">q", b)[0]),
    "value": lambda b: struct.unpack(">d", b)[0],
    "normalized": lambda b: struct.unpack(">d", b)[0],
    "moving_avg": lambda b: struct.unpack(">d", b)[0],
    "_ingestd_row": lambda b: struct.unpack(">i", b)[0],
}


def parse(payload: pgcopy.Payload) -> list[dict[str, Any]]:
    """Binary COPY data as one dict per row, by the column list (PostgreSQL docs, "Binary
    Format": signature, flags, extension length, then per tuple an int16 field count and per
    field an int32 length (-1: NULL) and the bytes, ending with int16 -1)."""
    data = bytes(payload.data)
    assert data[:11] == b"PGCOPY\n\xff\r\n\x00"
    flags, extension = struct.unpack(">ii", data[11:19])
    assert (flags, extension) == (0, 0)
    pos, out = 19, []
    while True:
        (fields,) = struct.unpack(">h", data[pos : pos + 2])
        pos += 2
        if fields == -1:
            break
        assert fields == len(payload.columns)
        row: dict[str, Any] = {}
        for name in payload.columns:
            (length,) = struct.unpack(">i", data[pos : pos + 4])
            pos += 4
            if length == -1:
                row[name] = None
                continue
            raw = data[pos : pos + length]
            pos += length
            row[name] = _DECODE[name](raw) if name in _DECODE else raw.decode()
        out.append(row)
    assert pos == len(data)
    return out


def _two_sensors() -> Batch:
    a = Batch.of_sensor(
        "ENC-ä",
        [0, 1, 2],
        [1.7e9, 1.7e9 + 0.5, 1.7e9 + 1],
        [1.0, -2.5, np.nan],
        [0, 1, 0],
        unit="°C",
    )
    b = Batch.of_sensor("ENC-long-identifier", [7], [1e9], [np.inf], unit="")
    return Batch.concat([a, b])


@pytest.mark.parametrize("interpolated", [False, True])
def test_the_payload_holds_every_row_and_field(interpolated: bool) -> None:
    batch = _two_sensors()
    if interpolated:  # a failed read on the line between good ones: its own quality
        batch.interpolated = np.array([False, True, False, False])
    payload = pgcopy.encode(batch, with_row=True)
    got = sorted(parse(payload), key=lambda r: r["_ingestd_row"])
    assert payload.rows == 4 and payload.refused == {}
    assert [r["_ingestd_row"] for r in got] == [0, 1, 2, 3]
    records = batch.to_records()
    for row, record in zip(got, records, strict=True):
        assert row["sensor_id"] == record["sensor_id"]
        assert row["unit"] == record["unit"]
        assert row["quality"] == record["quality"]
    assert [r["quality"] for r in got][:2] == ["ok", "interpolated" if interpolated else "stale"]
    for row, record in zip(got, records, strict=True):
        assert row["seq"] == record["seq"]
        assert row["ts"] == datetime.fromtimestamp(record["ts"], UTC)
        assert row["value"] == record["value"] or (
            np.isnan(row["value"]) and np.isnan(record["value"])
        )
        assert row["normalized"] is None and row["moving_avg"] is None  # absent: NULL


def test_present_stage_columns_are_sent_and_the_plain_payload_has_no_row_index() -> None:
    seq = np.arange(4)
    batch = Batch.of_sensor("ENC-2", seq, 1.7e9 + seq, seq * 1.0, columns={"moving_avg": seq * 3.0})
    payload = pgcopy.encode(batch)
    assert "_ingestd_row" not in payload.columns
    got = parse(payload)
    assert [r["moving_avg"] for r in got] == [0.0, 3.0, 6.0, 9.0]
    assert [r["normalized"] for r in got] == [None] * 4


def test_timestamps_round_like_datetime() -> None:
    rng = np.random.default_rng(7)
    ts = np.concatenate([1.7e9 + rng.random(5000) * 1e8, -1e9 * rng.random(500), rng.random(50)])
    micros, bad = pgcopy._pg_micros(ts)
    expected = [
        (datetime.fromtimestamp(t, UTC) - _PG_EPOCH) // timedelta(microseconds=1) for t in ts
    ]
    assert not bad.any()
    assert micros.tolist() == expected


def test_rows_no_column_can_take_are_refused_with_the_reason() -> None:
    ts = np.array([1.7e9, np.nan, np.inf, 1e16, 1.7e9])
    batch = Batch.concat(
        [
            Batch.of_sensor("ENC-3", range(5), ts, np.ones(5)),
            Batch.of_sensor("ENC-nul\x00", [0], [1.7e9], [1.0]),
        ]
    )
    payload = pgcopy.encode(batch)
    assert sorted(payload.refused) == [1, 2, 3, 5]
    assert "is no timestamptz" in payload.refused[1]
    assert "no PostgreSQL text" in payload.refused[5]
    assert payload.rows == 2
    assert sorted(r["seq"] for r in parse(payload)) == [0, 4]


def test_sensors_interned_after_the_first_payload_are_encoded_too() -> None:
    pgcopy.encode(Batch.of_sensor("ENC-first", [0], [1.7e9], [1.0]))
    later = [f"ENC-later-{i}-{'x' * i}" for i in range(40)]  # longer ids: a wider table
    batch = Batch.concat([Batch.of_sensor(s, [i], [1.7e9], [1.0]) for i, s in enumerate(later)])
    assert sorted(r["sensor_id"] for r in parse(pgcopy.encode(batch))) == sorted(later)


def test_alert_records_convert_or_are_refused_alone() -> None:
    batch = Batch.of_sensor("ENC-4", [0], [1.7e9], [1.0])
    good = {
        "kind": "alert",
        "sensor_id": "ENC-4",
        "state": "firing",
        "since": "2023-11-14T22:13:20.000001Z",
        "value": np.float64(3.5),
        "rule": "r",
        "ts": "2023-11-14T22:13:21Z",
    }
    batch.derived = [good, good | {"since": 17}, good | {"ts": "2023-11-14T22:13:21"}]
    out = rows.alert_records(batch)
    assert out.rows == [
        (
            "ENC-4",
            "r",
            "firing",
            datetime(2023, 11, 14, 22, 13, 20, 1, tzinfo=UTC),
            datetime(2023, 11, 14, 22, 13, 21, tzinfo=UTC),
            3.5,
        )
    ]
    assert [why for _, why in out.refused] == [
        "postgres: alert record refused: since must be an ISO-8601 string, got int",
        "postgres: alert record refused: ts '2023-11-14T22:13:21' names no UTC offset",
    ]


def test_feature_records_convert_numbers_and_refuse_what_is_none() -> None:
    batch = Batch.of_sensor("ENC-5", [0], [1.7e9], [1.0])
    record = {
        "kind": "features",
        "sensor_id": "ENC-5",
        "window_end_seq": np.int64(9),
        "count": 10.0,
    }
    batch.derived = [record, record | {"count": "many"}, record | {"count": 2.5}]
    out = rows.feature_records(batch)
    assert [row[:3] for row in out.rows] == [("ENC-5", 9, 10)]
    assert [type(v) for v in out.rows[0][:3]] == [str, int, int]
    assert len(out.refused) == 2


def test_config_names_the_key_and_the_reason() -> None:
    config = PostgresConfig(dsn=Secret(" "), table="x", features_table="x", alerts_table="")
    assert config.check() == [
        ("alerts_table", "must not be empty"),
        ("features_table", "must differ from the other tables, got 'x'"),
        ("dsn", "must not be empty"),
    ]


@pytest.mark.parametrize("table", ['"plain"', '"odd$ingestd$name"'])
def test_the_isolation_block_is_quoted_by_a_tag_the_body_does_not_hold(table: str) -> None:
    sql = isolate(table, "_stage", (("a", "text"),))
    tag = sql.split()[1]  # DO <tag> ... <tag>
    assert tag.startswith("$") and tag.endswith("$")
    body = sql[len(f"DO {tag}") : -len(tag)]
    assert sql.endswith(tag)
    assert tag not in body
    assert table in body
