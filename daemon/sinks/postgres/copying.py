"""One batch into its target tables in one transaction, the cheapest way that works for it.

Three modes, tried in this order and each only when the one before cannot do the batch:

- `DIRECT`: each kind is binary-COPYed straight into its table: one COPY, as fast as
  `psql \\copy`. New rows are the common case.
- `STAGED`: a row is already there (a replayed or redelivered batch: a unique violation). COPY
  into the connection's TEMP staging table, then `INSERT ... SELECT ... ON CONFLICT DO
  NOTHING`: idempotent, ~2.5x the cost, so only after a conflict.
- `ISOLATING`: the table refuses a row (SQLSTATE class 22 or 23: a CHECK, NOT NULL, a value
  out of range). The rows are staged with their index in the batch and inserted one at a time
  by a server-side loop (`schema.isolate`), each refused row noted with the database's reason
  and the rest landing. One round trip for the loop, whatever the number of refused rows.

A failed mode rolls the whole transaction back and the batch is written again in the next one:
no savepoint is paid on the normal path, and nothing of a failed attempt remains. A batch with
one kind of rows only (the common case: readings) in `DIRECT` mode is one COPY statement, which
is a transaction by itself, so it is sent without BEGIN and COMMIT around it. What the
database refuses in `ISOLATING` mode (the COPY itself refused: a value no column type takes)
is raised to the caller, and so is everything that is not a refusal (a lost connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg

from daemon.batch import Batch
from daemon.sinks.postgres import pgcopy
from daemon.sinks.postgres.rows import Records
from daemon.sinks.postgres.schema import INSERTED_SETTING, ROW, Target, take_refused

REFUSING_CLASSES = ("22", "23")  # data exception, integrity constraint violation


class Mode(enum.Enum):
    DIRECT = "direct"
    STAGED = "staged"
    ISOLATING = "isolating"


def refuses(exc: BaseException) -> bool:
    """Whether `exc` is the database refusing rows (class 22/23), not failing."""
    return str(getattr(exc, "sqlstate", "") or "")[:2] in REFUSING_CLASSES


class Load(Protocol):
    """Rows of one kind, able to COPY themselves (with each row's index, for isolation)."""

    @property
    def rows(self) -> int: ...

    async def copy(self, conn: Any, table: str, schema: str | None, *, with_row: bool) -> None: ...


class ReadingLoad:
    """A batch's readings, encoded once by `pgcopy` (again with the row index if isolated)."""

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.payload = pgcopy.encode(batch)
        self.rows = self.payload.rows

    async def copy(self, conn: Any, table: str, schema: str | None, *, with_row: bool) -> None:
        payload = pgcopy.encode(self.batch, with_row=True) if with_row else self.payload
        await watched(
            conn,
            conn.copy_to_table(
                table,
                source=payload.chunks(),
                columns=list(payload.columns),
                schema_name=schema,
                format="binary",
            ),
        )


class RecordLoad:
    """Derived records as tuples, through asyncpg's own binary codecs."""

    def __init__(self, records: Records, columns: tuple[str, ...]) -> None:
        self.records = records
        self.columns = columns
        self.rows = len(records)

    async def copy(self, conn: Any, table: str, schema: str | None, *, with_row: bool) -> None:
        rows = self.records.rows
        if with_row:
            rows = [(*row, i) for i, row in enumerate(rows)]
        await watched(
            conn,
            conn.copy_records_to_table(
                table,
                records=rows,
                columns=[*self.columns, ROW] if with_row else list(self.columns),
                schema_name=schema,
            ),
        )


async def watched(conn: Any, copy: Coroutine[Any, Any, Any]) -> None:
    """Await `copy`, but raise at once if the connection is lost meanwhile.

    Why: asyncpg (0.32) waits for its flow control to let it write the next COPY chunk; when
    the server drops the connection while writing is paused (a `pg_terminate_backend`, a
    restart, during a big COPY) that wait never ends and the write hangs until the guard's
    deadline cuts it (measured: the whole `write_timeout_s`, and a tripped breaker). Its
    termination listener does fire: it cancels this task, and the cancellation it caused (and
    only that one: a deadline's is passed on) becomes `ConnectionDoesNotExistError`.

    Why cancel rather than race the COPY in a task of its own: a task is one more turn of the
    event loop per batch, and in the daemon a turn may wait behind a stage's work while the
    server idles; this way the normal COPY costs no turn beyond its own round trips."""
    task = asyncio.current_task()
    assert task is not None
    watch = _Watch(task)
    conn.add_termination_listener(watch.closed)
    try:
        await copy
    except asyncio.CancelledError:
        if watch.cut and task.uncancel() == 0:
            raise asyncpg.ConnectionDoesNotExistError(
                "the connection was lost during a COPY"
            ) from None
        raise
    finally:
        watch.active = False
        with contextlib.suppress(asyncpg.InterfaceError):  # already released by its loss
            conn.remove_termination_listener(watch.closed)


class _Watch:
    """The listener's side of `watched`: cancel the task while its COPY runs, once."""

    __slots__ = ("active", "cut", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.active = True
        self.cut = False

    def closed(self, _: object) -> None:
        if self.active and not self.cut:
            self.cut = True
            self.task.cancel()


@dataclass
class Stored:
    """What one kind's rows came to: how many were inserted (not there before), and which the
    table refused (index in the load's batch or records -> the database's reason)."""

    inserted: int = 0
    refused: dict[int, str] = field(default_factory=dict)


async def write(
    conn: Any, loads: list[tuple[Load, Target]], mode: Mode
) -> tuple[list[Mode], list[Stored]]:
    """All `loads` in one committed transaction, starting in `mode`; the modes tried (the
    last one did it) and what each load came to."""
    tried = [mode]
    while True:
        try:
            if mode is Mode.DIRECT and sum(1 for load, _ in loads if load.rows) == 1:
                # One COPY is a transaction of its own: no BEGIN and COMMIT round trips.
                return tried, [await _store(conn, load, target, mode) for load, target in loads]
            async with conn.transaction():
                return tried, [await _store(conn, load, target, mode) for load, target in loads]
        except asyncpg.UniqueViolationError:
            if mode is not Mode.DIRECT:
                raise
            mode = Mode.STAGED
        except asyncpg.PostgresError as exc:
            if mode is Mode.ISOLATING or not refuses(exc):
                raise
            mode = Mode.ISOLATING
        tried.append(mode)


async def _store(conn: Any, load: Load, target: Target, mode: Mode) -> Stored:
    if not load.rows:
        return Stored()
    if mode is Mode.DIRECT:
        schema, table = target.name
        await load.copy(conn, table, schema, with_row=False)
        return Stored(load.rows)
    if mode is Mode.STAGED:
        await load.copy(conn, target.stage, None, with_row=False)
        return Stored(_count(await conn.execute(target.insert)))
    await load.copy(conn, target.stage, None, with_row=True)
    await conn.execute(target.isolate)
    refused = {
        int(r["row_index"]): f"postgres: {r['sqlstate']}: {r['message']}"
        for r in await conn.fetch(take_refused())
    }
    inserted = int(await conn.fetchval(f"SELECT current_setting('{INSERTED_SETTING}')"))
    return Stored(inserted, refused)


def _count(status: str) -> int:
    """The row count of a command tag such as `INSERT 0 512`."""
    return int(status.rsplit(" ", 1)[-1])
