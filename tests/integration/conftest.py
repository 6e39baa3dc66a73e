"""The `server` marker: `@pytest.mark.server("postgres")` needs that server on loopback.

Why skip-or-fail by environment: on a laptop without PostgreSQL the test is skipped with the
reason (which server, where it was looked for); under `CI=true` a missing server is a broken CI
machine, so the test fails instead of passing silently by skipping.
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.postgres_support import DSN, PgTables

SERVERS: dict[str, tuple[str, int]] = {
    "postgres": ("127.0.0.1", 5432),
    "mqtt": ("127.0.0.1", 1883),
    "nats": ("127.0.0.1", 4222),
}


@functools.cache
def unreachable(name: str) -> str | None:
    """Why server `name` cannot be used, or None when a TCP connection to it succeeds."""
    if name not in SERVERS:
        return f"unknown server {name!r} (known: {', '.join(SERVERS)})"
    host, port = SERVERS[name]
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return None
    except OSError as exc:
        return f"{name} is not reachable at {host}:{port}: {exc}"


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers(name="server"):
        reason = unreachable(str(marker.args[0]))
        if reason is None:
            continue
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture
async def db() -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test database, for a test's own checks and cleanup."""
    conn = await asyncpg.connect(DSN)
    yield conn
    await conn.close()


@pytest.fixture
async def tables(db: asyncpg.Connection, tmp_path: Path) -> AsyncIterator[PgTables]:
    """Table names of this test's own, dropped at teardown."""
    t = PgTables(tmp_path)
    yield t
    await t.drop(db)
