"""The `postgres` sink against the real PostgreSQL on loopback: every column, idempotence,
volume, features and alerts, a refused row, a killed connection, and the daemon end to end."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from benchmarks import configs
from daemon.components import PermanentSinkError, RowsRefused, SinkError
from daemon.config.types import Secret
from daemon.sinks.postgres import PostgresConfig, PostgresSink
from tests.e2e.daemonproc import DaemonProcess, reconciles
from tests.postgres_support import DSN, PgTables, readings
from tests.support import TestContext

pytestmark = pytest.mark.server("postgres")


async def test_batch_lands_with_every_column(tables: PgTables, db: asyncpg.Connection) -> None:
    sink = tables.sink()
    await sink.open()
    await sink.write(readings("PG1", [0, 1, 2], stale=[False, True, False]))
    await sink.write(readings("PG2", [0], columns=False))
    await sink.close()
    got = await db.fetch(f'SELECT * FROM "{tables.readings}" ORDER BY sensor_id, seq')
    assert [tuple(r.values()) for r in got] == [
        ("PG1", 0, datetime.fromtimestamp(1.7e9, UTC), 0.0, "celsius", "ok", 0.0, 0.0),
        ("PG1", 1, datetime.fromtimestamp(1.7e9 + 0.25, UTC), 1.5, "celsius", "stale", 0.1, 2.0),
        ("PG1", 2, datetime.fromtimestamp(1.7e9 + 0.5, UTC), 3.0, "celsius", "ok", 0.2, 4.0),
        ("PG2", 0, datetime.fromtimestamp(1.7e9, UTC), 0.0, "celsius", "ok", None, None),
    ]


async def test_same_batch_twice_lands_once(tables: PgTables, db: asyncpg.Connection) -> None:
    sink = tables.sink()
    await sink.open()
    batch = readings("PG1", range(100))
    await sink.write(batch)
    await sink.write(batch)
    await sink.write(readings("PG1", range(50, 150)))  # half overlapping
    for i in range(20):  # past the staged run that follows a conflict: direct COPY again
        await sink.write(readings("PG2", range(i * 10, i * 10 + 10)))
    await sink.write(readings("PG2", range(195, 205)))  # a conflict on the direct path again
    await sink.close()
    assert await db.fetchval(f'SELECT count(*) FROM "{tables.readings}"') == 355
    assert sink.ctx.gauge()["duplicates"] == 155


async def test_ten_thousand_readings_exactly(tables: PgTables, db: asyncpg.Connection) -> None:
    sink = tables.sink()
    await sink.open()
    expected: set[tuple[str, int]] = set()
    for i in range(20):
        sensor = f"PG{i % 4}"
        seqs = range((i // 4) * 500, (i // 4) * 500 + 500)
        expected |= {(sensor, s) for s in seqs}
        await sink.write(readings(sensor, seqs))
    await sink.close()
    got = await db.fetch(f'SELECT sensor_id, seq FROM "{tables.readings}"')
    assert len(got) == 10_000
    assert {(r["sensor_id"], r["seq"]) for r in got} == expected


async def test_feature_records_land(tables: PgTables, db: asyncpg.Connection) -> None:
    sink = tables.sink()
    await sink.open()
    batch = readings("PG1", [0, 1])
    feature = {"kind": "features", "sensor_id": "PG1", "window_end_seq": 255, "count": 256}
    names = ("mean", "std", "min", "max", "slope", "p95", "dominant_hz", "anomaly_score")
    feature |= {name: float(i) for i, name in enumerate(names)}
    batch.derived = [feature, {"kind": "other", "sensor_id": "PG1"}]  # a kind not stored
    await sink.write(batch)
    await sink.write(batch)
    await sink.close()
    [row] = await db.fetch(f'SELECT * FROM "{tables.features}"')
    assert dict(row) == {k: v for k, v in feature.items() if k != "kind"}


async def test_alert_records_land_once_keyed_by_episode(
    tables: PgTables, db: asyncpg.Connection
) -> None:
    sink = tables.sink()
    await sink.open()
    batch = readings("PG1", [0, 1])
    firing = {
        "kind": "alert",
        "sensor_id": "PG1",
        "state": "firing",
        "since": "2023-11-14T22:13:20.000000Z",
        "value": 120.5,
        "rule": "value>100",
        "ts": "2023-11-14T22:13:20.250000Z",
    }
    resolved = firing | {"state": "resolved", "value": 80.0, "ts": "2023-11-14T22:13:21.000000Z"}
    batch.derived = [firing, {"kind": "features", "sensor_id": "PG1", "window_end_seq": 1}]
    await sink.write(batch)
    await sink.write(batch)  # a redelivery: nothing twice
    later = readings("PG1", [2])
    later.derived = [resolved]
    await sink.write(later)
    await sink.close()
    got = await db.fetch(f'SELECT * FROM "{tables.alerts}" ORDER BY ts')
    assert [dict(r) for r in got] == [
        {
            "sensor_id": "PG1",
            "rule": "value>100",
            "state": state,
            "since": datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
            "ts": ts,
            "value": value,
        }
        for state, ts, value in (
            ("firing", datetime(2023, 11, 14, 22, 13, 20, 250000, tzinfo=UTC), 120.5),
            ("resolved", datetime(2023, 11, 14, 22, 13, 21, tzinfo=UTC), 80.0),
        )
    ]
    assert await db.fetchval(f'SELECT count(*) FROM "{tables.features}"') == 1
    assert sink.ctx.gauge()["alerts"] == 2


async def test_a_refused_row_costs_only_itself(tables: PgTables, db: asyncpg.Connection) -> None:
    sink = tables.sink()
    await sink.open()
    await sink.write(readings("PG1", [0]))  # creates the table
    await db.execute(f'ALTER TABLE "{tables.readings}" ADD CHECK (value < 100)')
    with pytest.raises(RowsRefused) as refused:
        await sink.write(readings("PG1", [1, 1000, 2]))  # 1000 * 1.5 breaks the CHECK
    assert list(refused.value.refused) == [1]
    assert "23514" in refused.value.refused[1]
    assert "check constraint" in refused.value.refused[1]
    await sink.write(readings("PG1", [3]))  # the next batch goes the direct way again
    assert sink.ctx.gauge()["mode"] == "direct"
    await sink.close()
    assert sorted(s for _, s in await tables.keys(db)) == [0, 1, 2, 3]


async def test_killed_connection_retries_then_lands(
    tables: PgTables, db: asyncpg.Connection
) -> None:
    sink = tables.sink(pool_size=1)
    await sink.open()
    await sink.write(readings("PG1", [0]))
    killed = await db.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
        tables.app,
    )
    assert killed == 1
    batch = readings("PG1", [1, 2])
    with pytest.raises(SinkError) as failed:
        await sink.write(batch)
    assert not isinstance(failed.value, PermanentSinkError)
    await sink.write(batch)  # what the guard's retry does: the pool reconnects
    await sink.close()
    assert await db.fetchval(f'SELECT count(*) FROM "{tables.readings}"') == 3


async def test_server_down_at_open_is_retryable(tables: PgTables) -> None:
    config = PostgresConfig(dsn=Secret("postgresql://postgres@127.0.0.1:1/test"))
    sink = PostgresSink(config, TestContext("sinks[0]", tables.dead_letter))
    await sink.open()  # logs, does not raise
    with pytest.raises(SinkError) as failed:
        await sink.write(readings("PG1", [0]))
    assert not isinstance(failed.value, PermanentSinkError)
    await sink.close()


@pytest.mark.e2e
async def test_daemon_simulated_to_postgres(
    tables: PgTables, db: asyncpg.Connection, tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    doc = {
        "daemon": {
            "log_level": "info",
            "health_interval_s": 0.5,
            "dead_letter": str(tmp_path / "dead-letter.jsonl"),
            "state_dir": str(tmp_path / "state"),
        },
        "sources": [
            {
                "type": "simulated",
                "sensors": 20,
                "rate_hz": 1000.0,
                "max_readings": 500,
                "anomaly_rate": 0.05,
                "fault_rate": 0.01,
                "seed": 7,
                "id_prefix": "PGE",
            }
        ],
        "stages": configs.default_chain(),
        "sinks": [
            {
                "type": "postgres",
                "dsn": DSN,
                "table": tables.readings,
                "features_table": tables.features,
                "alerts_table": tables.alerts,
                "application_name": tables.app,
                "spool_dir": str(tmp_path / "spool"),
                "retry": {"attempts": 2, "base_delay_s": 0.01},
            }
        ],
    }
    d = DaemonProcess(configs.write(tmp_path / "ingestd.toml", doc))
    daemons.append(d)
    assert d.finish(timeout=60) == 0, d.stderr
    c = d.counters()
    assert reconciles(c), c
    assert c["written"] > 0
    count = await db.fetchval(f'SELECT count(*) FROM "{tables.readings}"')
    assert count == c["written"]
    distinct = await db.fetchval(
        f'SELECT count(DISTINCT (sensor_id, seq)) FROM "{tables.readings}"'
    )
    assert distinct == count
