"""Rows the database refuses cost only themselves: through the real guard and fan-out, each
refused reading is in the dead-letter file with PostgreSQL's reason, the rest of its batch is in
the table, and the counters reconcile; refused derived records are dead-lettered uncounted."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import numpy as np
import pytest

from tests.postgres_support import PgRig, PgTables, readings

pytestmark = pytest.mark.server("postgres")


async def _rig(tmp_path: Path, tables: PgTables, db: asyncpg.Connection) -> PgRig:
    """A rig whose readings table refuses value >= 100 (a CHECK added once it exists)."""
    rig = PgRig(tmp_path, tables.config())
    await rig.guarded.open()  # creates the tables
    await db.execute(f'ALTER TABLE "{tables.readings}" ADD CHECK (value < 100)')
    return rig


async def test_one_refused_row_is_dead_lettered_the_rest_lands(
    tmp_path: Path, tables: PgTables, db: asyncpg.Connection
) -> None:
    rig = await _rig(tmp_path, tables, db)
    batch = readings("RF1", range(50))
    batch.value[:] = 1.0
    batch.value[17] = 250.0  # the one row the CHECK refuses
    await rig.feed(batch)
    await rig.feed(readings("RF2", range(10)))  # values 0 .. 13.5: all fine
    await rig.guarded.close()

    [entry] = rig.dead_letters()
    assert entry["source"] == "sinks[0]"
    assert (entry["raw"]["sensor_id"], entry["raw"]["seq"], entry["raw"]["value"]) == (
        "RF1",
        17,
        250.0,
    )
    assert entry["reason"].startswith("postgres: 23514: new row for relation")
    assert "check constraint" in entry["reason"]
    assert set(await tables.keys(db)) == rig.fed - {("RF1", 17)}
    c = rig.ctx.counters
    assert (c.read, c.written, c.rejected, c.spooled) == (60, 59, 1, 0)
    assert c.reconciles()
    assert rig.guarded.state == "closed"


async def test_refused_rows_of_a_replayed_batch_land_nothing_twice(
    tmp_path: Path, tables: PgTables, db: asyncpg.Connection
) -> None:
    rig = await _rig(tmp_path, tables, db)
    batch = readings("RF1", range(80))  # value = seq * 1.5: seq 67 and up are refused
    await rig.feed(batch)
    await rig.feed(batch)  # a redelivery of the same batch: staged and isolated, nothing twice
    await rig.guarded.close()
    assert sorted(s for _, s in await tables.keys(db)) == list(range(67))
    refused = [e["raw"]["seq"] for e in rig.dead_letters()]
    assert refused == list(range(67, 80)) * 2  # each delivery's refusals, with the reason
    c = rig.ctx.counters
    assert (c.written, c.rejected) == (2 * 67, 2 * 13)
    assert c.reconciles()
    assert rig.sink.ctx.gauge()["duplicates"] == 67


async def test_a_ts_no_column_can_take_is_refused_before_the_copy(
    tmp_path: Path, tables: PgTables, db: asyncpg.Connection
) -> None:
    rig = PgRig(tmp_path, tables.config())
    await rig.guarded.open()
    batch = readings("RF3", range(5))
    batch.ts[1] = np.nan
    batch.ts[3] = 1e16  # beyond timestamptz's year 294276
    await rig.feed(batch)
    await rig.guarded.close()
    assert sorted(s for _, s in await tables.keys(db)) == [0, 2, 4]
    reasons = {e["raw"]["seq"]: e["reason"] for e in rig.dead_letters()}
    assert sorted(reasons) == [1, 3]
    assert all("is no timestamptz" in r for r in reasons.values())
    assert rig.ctx.counters.reconciles()


async def test_refused_derived_records_are_dead_lettered_uncounted(
    tmp_path: Path, tables: PgTables, db: asyncpg.Connection
) -> None:
    rig = PgRig(tmp_path, tables.config())
    await rig.guarded.open()
    batch = readings("RF4", range(3))
    good = {"kind": "features", "sensor_id": "RF4", "window_end_seq": 2, "count": 3}
    no_key = {"kind": "features", "sensor_id": "RF4", "count": 3}  # NOT NULL refuses it
    alert = {
        "kind": "alert",
        "sensor_id": "RF4",
        "state": "firing",
        "since": "yesterday",  # no ISO-8601 time: refused before the COPY
        "value": 1.0,
        "rule": "r",
        "ts": "2023-11-14T22:13:20Z",
    }
    batch.derived = [good, no_key, alert]
    await rig.feed(batch)
    await rig.guarded.close()
    assert await db.fetchval(f'SELECT count(*) FROM "{tables.features}"') == 1
    assert await db.fetchval(f'SELECT count(*) FROM "{tables.alerts}"') == 0
    entries = {e["raw"]["kind"]: e["reason"] for e in rig.dead_letters()}
    assert "23502" in entries["features"]  # not_null_violation, the database's own reason
    assert "since" in entries["alert"]
    c = rig.ctx.counters
    assert (c.written, c.rejected) == (3, 0)  # records are not readings
    assert c.reconciles()
