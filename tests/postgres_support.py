"""What the PostgreSQL sink tests share: the loopback DSN, a test's own table names (dropped at
teardown), readings batches, and the sink behind a real guard and fan-out (`PgRig`)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import orjson

from daemon.batch import Batch
from daemon.config.loader import BreakerConfig, RetryConfig, SinkResilience
from daemon.config.types import Secret
from daemon.resilience import GuardedSink
from daemon.sinks.postgres import PostgresConfig, PostgresSink
from daemon.topology.fanout import FanOut
from tests.support import TestContext

DSN = "postgresql://postgres@127.0.0.1:5432/test"


def dsn_for(user: str) -> str:
    return f"postgresql://{user}@127.0.0.1:5432/test"


class PgTables:
    """A test's own table names (and application_name, to find its sessions); the sinks it
    makes dead-letter into `tmp`."""

    def __init__(self, tmp: Path) -> None:
        self.dead_letter = str(tmp / "dead-letter.jsonl")
        self.tag = uuid.uuid4().hex[:10]
        self.readings = f"t_{self.tag}"
        self.features = f"f_{self.tag}"
        self.alerts = f"a_{self.tag}"
        self.app = f"ingestd-test-{self.tag}"

    def config(self, dsn: str = DSN, **overrides: Any) -> PostgresConfig:
        keys: dict[str, Any] = {
            "table": self.readings,
            "features_table": self.features,
            "alerts_table": self.alerts,
            "application_name": self.app,
        }
        return PostgresConfig(dsn=Secret(dsn), **(keys | overrides))

    def sink(self, dsn: str = DSN, **overrides: Any) -> PostgresSink:
        return PostgresSink(
            self.config(dsn, **overrides), TestContext("sinks[0]", self.dead_letter)
        )

    async def drop(self, db: asyncpg.Connection) -> None:
        await db.execute(
            f'DROP TABLE IF EXISTS "{self.readings}", "{self.features}", "{self.alerts}"'
        )

    async def keys(self, db: asyncpg.Connection) -> list[tuple[str, int]]:
        rows = await db.fetch(f'SELECT sensor_id, seq FROM "{self.readings}"')
        return [(r["sensor_id"], r["seq"]) for r in rows]


def readings(sensor_id: str, seqs: Any, *, columns: bool = True, stale: Any = None) -> Batch:
    """`sensor_id`'s readings `seqs`: ts 1.7e9 + seq/4, value seq * 1.5, with both stage columns."""
    seq = np.asarray(seqs, dtype=np.int64)
    extra = {"normalized": seq / 10.0, "moving_avg": seq * 2.0} if columns else None
    return Batch.of_sensor(
        sensor_id, seq, 1.7e9 + seq * 0.25, seq * 1.5, stale, unit="celsius", columns=extra
    )


class PgRig:
    """A `PostgresSink` behind a real `GuardedSink` and `FanOut`, counting like the topology:
    `feed` reads a batch in and delivers it; counters and the dead-letter file are the run's."""

    def __init__(
        self,
        tmp_path: Path,
        config: PostgresConfig,
        *,
        attempts: int = 2,
        failure_threshold: int = 1,
        reset_timeout_s: float = 0.2,
        write_timeout_s: float = 5.0,
    ) -> None:
        self.ctx = TestContext("sinks[0]", str(tmp_path / "dead-letter.jsonl"))
        self.sink = PostgresSink(config, self.ctx)
        resilience = SinkResilience(
            retry=RetryConfig(attempts=attempts, base_delay_s=0.01, max_delay_s=0.05),
            breaker=BreakerConfig(failure_threshold, reset_timeout_s),
            spool_dir=str(tmp_path / "spool"),
            write_timeout_s=write_timeout_s,
        )
        self.guarded = GuardedSink(self.sink, resilience, self.ctx.state, self.ctx.lifetime)
        self.fanout = FanOut([self.guarded], self.ctx.state)
        self.fed: set[tuple[str, int]] = set()

    async def feed(self, batch: Batch) -> None:
        self.ctx.counters.read += len(batch)
        self.fed |= set(zip(batch.sensor_ids().tolist(), batch.seq.tolist(), strict=True))
        assert await self.fanout.deliver(batch)

    def dead_letters(self) -> list[dict[str, Any]]:
        path = Path(self.ctx.state.dead_letter.path)
        if not path.exists():
            return []
        return [orjson.loads(line) for line in path.read_bytes().splitlines()]
