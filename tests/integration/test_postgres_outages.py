"""The database going away or refusing writes for a while, for real, through the real guard:
the sink's sessions killed mid-COPY while it may not log in again, INSERT revoked, the table
locked so writes time out. Each time the write fails over (retry, breaker, spool), the spool
replays once the database takes writes again, and every reading lands exactly once: the table's
(sensor_id, seq) set is what was fed, and the counters reconcile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
from structlog.testing import capture_logs

from tests.postgres_support import DSN, PgRig, PgTables, dsn_for, readings

pytestmark = pytest.mark.server("postgres")

DEADLINE_S = 20.0


@pytest.fixture
async def tables(db: asyncpg.Connection, tmp_path: Path) -> AsyncIterator[PgTables]:
    t = PgTables(tmp_path)
    sink = t.sink()  # the tables exist (owned by postgres) before any role writes them
    await sink.open()
    await sink.close()
    yield t
    await t.drop(db)


@pytest.fixture
async def role(db: asyncpg.Connection, tables: PgTables) -> AsyncIterator[str]:
    """A login role of this test's own that may write its tables, dropped at teardown."""
    name = f"ingestd_{tables.tag}"
    await db.execute(f'CREATE ROLE "{name}" LOGIN')
    for table in (tables.readings, tables.features, tables.alerts):
        await db.execute(f'GRANT SELECT, INSERT ON "{table}" TO "{name}"')
    yield name
    await db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", name
    )
    await until(lambda: _gone(db, name), "the role's sessions to end")
    await db.execute(f'DROP OWNED BY "{name}"')
    await db.execute(f'DROP ROLE "{name}"')


async def _gone(db: asyncpg.Connection, user: str) -> bool:
    left = await db.fetchval("SELECT count(*) FROM pg_stat_activity WHERE usename = $1", user)
    return bool(left == 0)


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait for `condition` (polled) within `DEADLINE_S`, else fail naming `what`."""
    deadline = time.monotonic() + DEADLINE_S
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def _replay_all(rig: PgRig) -> None:
    """Until the spool is empty: the breaker's probe comes after its reset timeout."""
    await until(rig.guarded.maybe_replay, "the spool to replay")


async def _lands_exactly_once(rig: PgRig, tables: PgTables, db: asyncpg.Connection) -> None:
    await rig.guarded.close()
    keys = await tables.keys(db)
    assert len(keys) == len(rig.fed)
    assert set(keys) == rig.fed
    c = rig.ctx.counters
    assert c.spooled == c.unspooled > 0  # it did fail over, and all of it came back
    assert c.written + c.spooled == c.read
    assert c.reconciles()
    assert rig.guarded.spool.pending_batches == 0


async def test_sessions_killed_mid_copy_spool_then_land_once(
    tmp_path: Path, tables: PgTables, role: str, db: asyncpg.Connection
) -> None:
    rig = PgRig(tmp_path, tables.config(dsn_for(role), create_tables=False))
    await rig.guarded.open()
    await rig.feed(readings("KL1", range(100)))

    async def copying() -> bool:
        return bool(
            await db.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
                " AND state = 'active' AND query LIKE 'COPY%'",
                tables.app,
            )
        )

    with capture_logs() as logs:
        big = asyncio.create_task(rig.feed(readings("KL2", range(100_000))))
        await until(copying, "the big batch's COPY to run")
        await db.execute(f'ALTER ROLE "{role}" NOLOGIN')  # the retries cannot get back in
        killed = await db.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = $1",
            tables.app,
        )
        await big
        assert killed >= 1
        assert rig.guarded.state == "open"
        assert rig.ctx.counters.spooled == 100_000
        await rig.feed(readings("KL3", range(50)))  # the breaker is open: spooled at once
        await db.execute(f'ALTER ROLE "{role}" LOGIN')
        await _replay_all(rig)
    failed = [e for e in logs if e["event"] == "sink_write_failed"]
    assert failed and all("postgres" in e["error"] for e in failed)
    # the COPY cut by the kill failed at once: it did not hang until the write deadline
    assert not [e for e in logs if e["event"] == "sink_write_timeout"]
    await _lands_exactly_once(rig, tables, db)


async def test_insert_revoked_for_a_while_opens_the_breaker_then_replays(
    tmp_path: Path, tables: PgTables, role: str, db: asyncpg.Connection
) -> None:
    rig = PgRig(tmp_path, tables.config(dsn_for(role), create_tables=False))
    await rig.guarded.open()
    await rig.feed(readings("RV1", range(200)))
    await db.execute(f'REVOKE INSERT ON "{tables.readings}" FROM "{role}"')
    with capture_logs() as logs:
        await rig.feed(readings("RV1", range(200, 400)))  # 42501: retried, then spooled
        await rig.feed(readings("RV2", range(100)))
    assert rig.guarded.state == "open"
    assert [e["to"] for e in logs if e["event"] == "breaker_state_changed"] == ["open"]
    assert any("InsufficientPrivilege" in e["error"] for e in logs if "error" in e)
    assert rig.ctx.counters.spooled == 300
    await db.execute(f'GRANT INSERT ON "{tables.readings}" TO "{role}"')
    await _replay_all(rig)
    await rig.feed(readings("RV2", range(100, 150)))  # and new batches flow again
    await _lands_exactly_once(rig, tables, db)


async def test_a_locked_table_times_writes_out_then_replays(
    tmp_path: Path, tables: PgTables, db: asyncpg.Connection
) -> None:
    rig = PgRig(tmp_path, tables.config(), write_timeout_s=0.5)
    await rig.guarded.open()
    await rig.feed(readings("LK1", range(100)))
    locker = await asyncpg.connect(DSN)
    try:
        lock = locker.transaction()
        await lock.start()
        await locker.execute(f'LOCK TABLE "{tables.readings}" IN ACCESS EXCLUSIVE MODE')
        with capture_logs() as logs:
            await rig.feed(readings("LK1", range(100, 300)))  # waits on the lock: timed out
            await rig.feed(readings("LK2", range(100)))  # the breaker tripped: spooled at once
        assert [e["event"] for e in logs if e["event"] == "sink_write_timeout"] == [
            "sink_write_timeout"
        ]
        assert rig.guarded.state == "open"
        assert rig.ctx.counters.spooled == 300
        await lock.rollback()
    finally:
        await locker.close()
    await _replay_all(rig)
    await _lands_exactly_once(rig, tables, db)
