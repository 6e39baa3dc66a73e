"""The `postgres` sink against the real PostgreSQL on loopback: every column, idempotence,
volume, features, a killed connection, and the daemon end to end."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest

from benchmarks import configs
from daemon.batch import Batch
from daemon.components import PermanentSinkError, SinkError
from daemon.config.types import Secret
from daemon.sinks.postgres import PostgresConfig, PostgresSink
from tests.e2e.daemonproc import DaemonProcess, reconciles
from tests.support import TestContext

pytestmark = pytest.mark.server("postgres")

DSN = "postgresql://postgres@127.0.0.1:5432/test"


class Tables:
    """A test's own table names, dropped at teardown."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:10]
        self.readings = f"t_{tag}"
        self.features = f"f_{tag}"
        self.app = f"ingestd-test-{tag}"

    def sink(self, **overrides: Any) -> PostgresSink:
        config = PostgresConfig(
            dsn=Secret(DSN),
            table=self.readings,
            features_table=self.features,
            application_name=self.app,
            **overrides,
        )
        return PostgresSink(config, TestContext("sinks[0]"))


@pytest.fixture
async def db() -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(DSN)
    yield conn
    await conn.close()


@pytest.fixture
async def tables(db: asyncpg.Connection) -> AsyncIterator[Tables]:
    t = Tables()
    yield t
    await db.execute(f'DROP TABLE IF EXISTS "{t.readings}", "{t.features}"')


def _batch(sensor_id: str, seqs: Any, *, columns: bool = True, stale: Any = None) -> Batch:
    seq = np.asarray(seqs, dtype=np.int64)
    extra = {"normalized": seq / 10.0, "moving_avg": seq * 2.0} if columns else None
    return Batch.of_sensor(
        sensor_id, seq, 1.7e9 + seq * 0.25, seq * 1.5, stale, unit="celsius", columns=extra
    )


async def test_batch_lands_with_every_column(tables: Tables, db: asyncpg.Connection) -> None:
    sink = tables.sink()
    await sink.open()
    await sink.write(_batch("PG1", [0, 1, 2], stale=[False, True, False]))
    await sink.write(_batch("PG2", [0], columns=False))
    await sink.close()
    got = await db.fetch(f'SELECT * FROM "{tables.readings}" ORDER BY sensor_id, seq')
    assert [tuple(r.values()) for r in got] == [
        ("PG1", 0, datetime.fromtimestamp(1.7e9, UTC), 0.0, "celsius", "ok", 0.0, 0.0),
        ("PG1", 1, datetime.fromtimestamp(1.7e9 + 0.25, UTC), 1.5, "celsius", "stale", 0.1, 2.0),
        ("PG1", 2, datetime.fromtimestamp(1.7e9 + 0.5, UTC), 3.0, "celsius", "ok", 0.2, 4.0),
        ("PG2", 0, datetime.fromtimestamp(1.7e9, UTC), 0.0, "celsius", "ok", None, None),
    ]


async def test_same_batch_twice_lands_once(tables: Tables, db: asyncpg.Connection) -> None:
    sink = tables.sink()
    await sink.open()
    batch = _batch("PG1", range(100))
    await sink.write(batch)
    await sink.write(batch)
    await sink.write(_batch("PG1", range(50, 150)))  # half overlapping
    for i in range(20):  # past the staged run that follows a conflict: direct COPY again
        await sink.write(_batch("PG2", range(i * 10, i * 10 + 10)))
    await sink.write(_batch("PG2", range(195, 205)))  # a conflict on the direct path again
    await sink.close()
    assert await db.fetchval(f'SELECT count(*) FROM "{tables.readings}"') == 355
    assert sink.ctx.gauge()["duplicates"] == 155


async def test_ten_thousand_readings_exactly(tables: Tables, db: asyncpg.Connection) -> None:
    sink = tables.sink()
    await sink.open()
    expected: set[tuple[str, int]] = set()
    for i in range(20):
        sensor = f"PG{i % 4}"
        seqs = range((i // 4) * 500, (i // 4) * 500 + 500)
        expected |= {(sensor, s) for s in seqs}
        await sink.write(_batch(sensor, seqs))
    await sink.close()
    got = await db.fetch(f'SELECT sensor_id, seq FROM "{tables.readings}"')
    assert len(got) == 10_000
    assert {(r["sensor_id"], r["seq"]) for r in got} == expected


async def test_feature_records_land(tables: Tables, db: asyncpg.Connection) -> None:
    sink = tables.sink()
    await sink.open()
    batch = _batch("PG1", [0, 1])
    feature = {"kind": "features", "sensor_id": "PG1", "window_end_seq": 255, "count": 256}
    names = ("mean", "std", "min", "max", "slope", "p95", "dominant_hz", "anomaly_score")
    feature |= {name: float(i) for i, name in enumerate(names)}
    batch.derived = [feature, {"kind": "alert", "sensor_id": "PG1"}]
    await sink.write(batch)
    await sink.write(batch)
    await sink.close()
    [row] = await db.fetch(f'SELECT * FROM "{tables.features}"')
    assert dict(row) == {k: v for k, v in feature.items() if k != "kind"}


async def test_refused_rows_are_permanent(tables: Tables, db: asyncpg.Connection) -> None:
    sink = tables.sink()
    await sink.open()
    await sink.write(_batch("PG1", [0]))  # creates the table
    await db.execute(f'ALTER TABLE "{tables.readings}" ADD CHECK (value < 100)')
    with pytest.raises(PermanentSinkError):
        await sink.write(_batch("PG1", [1000]))
    await sink.write(_batch("PG1", [1]))
    await sink.close()
    assert await db.fetchval(f'SELECT count(*) FROM "{tables.readings}"') == 2


async def test_killed_connection_retries_then_lands(tables: Tables, db: asyncpg.Connection) -> None:
    sink = tables.sink(pool_size=1)
    await sink.open()
    await sink.write(_batch("PG1", [0]))
    killed = await db.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
        tables.app,
    )
    assert killed == 1
    batch = _batch("PG1", [1, 2])
    with pytest.raises(SinkError) as failed:
        await sink.write(batch)
    assert not isinstance(failed.value, PermanentSinkError)
    await sink.write(batch)  # what the guard's retry does: the pool reconnects
    await sink.close()
    assert await db.fetchval(f'SELECT count(*) FROM "{tables.readings}"') == 3


async def test_server_down_at_open_is_retryable(tables: Tables) -> None:
    config = PostgresConfig(dsn=Secret("postgresql://postgres@127.0.0.1:1/test"))
    sink = PostgresSink(config, TestContext("sinks[0]"))
    await sink.open()  # logs, does not raise
    with pytest.raises(SinkError) as failed:
        await sink.write(_batch("PG1", [0]))
    assert not isinstance(failed.value, PermanentSinkError)
    await sink.close()


@pytest.mark.e2e
async def test_daemon_simulated_to_postgres(
    tables: Tables, db: asyncpg.Connection, tmp_path: Path, daemons: list[DaemonProcess]
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
