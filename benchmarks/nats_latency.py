"""Publish-to-commit latency of the `nats` source at a fleet's pace (run by `nats_ingest`).

A publisher process (`benchmarks.nats_publisher`) sends N sensors x 1 Hz, spread over each
second, each reading stamped `ts = time.time()` as it is published; it starts at READY=1 and the
daemon gets SIGTERM once all it published is written.

Into PostgreSQL: the readings table gets one extra column, `committed_at timestamptz DEFAULT
clock_timestamp()`, so PostgreSQL stamps each row as the sink's COPY inserts it, on the same
machine's clock as the publisher: `committed_at - ts` is publish -> broker -> fetch -> decode ->
pipeline -> row written, measured by neither the daemon nor the harness. It stops short of
COMMIT by the rest of that batch's COPY and the commit itself, so the daemon's own histogram
(reading `ts` to every sink's acknowledgement, i.e. after COMMIT returned) is reported beside
it as the upper bound. The first `WARMUP_S` are left out. Nothing published may be missing.

Into the blackhole sink: the same fleet and source, no database; the daemon's histogram alone
(the whole run). The gap between the two is what PostgreSQL's commits add on this machine.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks import configs, measure, workloads
from benchmarks.daemonrun import Observed, run_daemon

NATS_URL = "nats://127.0.0.1:4222"
DSN = "postgresql://postgres@127.0.0.1:5432/test"
WARMUP_S = 2.0

LATENCY_TABLE = """CREATE TABLE {t} (
    sensor_id text NOT NULL, seq bigint NOT NULL, ts timestamptz NOT NULL,
    value double precision, unit text, quality text, normalized double precision,
    moving_avg double precision, committed_at timestamptz DEFAULT clock_timestamp(),
    PRIMARY KEY (sensor_id, seq))"""

COMMIT_LATENCY = """SELECT count(*) AS n,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM committed_at - ts)) AS p50,
    percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM committed_at - ts)) AS p99,
    max(extract(epoch FROM committed_at - ts)) AS max,
    (SELECT count(*) FROM {t}) AS total
    FROM {t} WHERE ts >= (SELECT min(ts) FROM {t}) + interval '{warmup} s'"""


def sql(statement: str) -> list[Any]:
    async def go() -> list[Any]:
        conn = await asyncpg.connect(DSN)
        try:
            return list(await conn.fetch(statement))
        finally:
            await conn.close()

    return asyncio.run(go())


def postgres_sink(tmp: Path, table: str) -> dict[str, Any]:
    return configs.postgres_sink(DSN, table, spool_dir=str(tmp / "spool"))


def nats_source(stream: str, subject: str, durable: str, **more: Any) -> dict[str, Any]:
    return {
        "type": "nats",
        "url": NATS_URL,
        "stream": stream,
        "subjects": [f"{subject}.>"],
        "durable": durable,
    } | more


def fleet_into(
    stream: str, sink: dict[str, Any], tmp: Path, *, sensors: int, seconds: float, run: int
) -> tuple[Observed, dict[str, Any]]:
    """The daemon (`stream` -> `sink`) with the paced fleet publishing; what it showed and
    the publisher's own report (how many, how late it ran)."""
    subject = stream.lower()
    text = workloads.config(
        workloads.daemon_section(tmp, health_s=0.25),
        nats_source(stream, subject, f"lat{run}"),
        [],
        sink,
    )
    publisher: dict[str, Any] = {}

    def drive(seen: Observed) -> bool:
        """Start the fleet at READY=1; stop once all it published is written."""
        if seen.ready_at is None:
            return False
        if "proc" not in publisher:
            command = [sys.executable, "-m", "benchmarks.nats_publisher", "--subject", subject]
            command += ["--sensors", str(sensors), "--seconds", str(seconds)]
            publisher["proc"] = subprocess.Popen(command, stdout=subprocess.PIPE)
        proc = publisher["proc"]
        if proc.poll() is None or not seen.samples:
            return False
        if "result" not in publisher:
            publisher["result"] = json.loads(proc.stdout.read())
        written = int(seen.samples[-1].health["counters"]["written"])
        return written >= int(publisher["result"]["published"])

    try:
        seen = run_daemon(text, tmp, stop=drive, timeout_s=seconds + 120)
    finally:
        if "proc" in publisher and publisher["proc"].poll() is None:
            publisher["proc"].kill()
    return seen, publisher["result"]


def into_postgres(stream: str, sensors: int, seconds: float, run: int) -> dict[str, Any]:
    table = f"lat_{uuid.uuid4().hex[:10]}"
    sql(LATENCY_TABLE.format(t=f'"{table}"'))
    try:
        with workloads.scratch() as d:
            tmp = Path(d)
            sink = postgres_sink(tmp, table)
            seen, published = fleet_into(
                stream, sink, tmp, sensors=sensors, seconds=seconds, run=run
            )
        [row] = sql(COMMIT_LATENCY.format(t=f'"{table}"', warmup=WARMUP_S))
    finally:
        sql(configs.drop_postgres_tables(table))
    return {
        "scenario": "latency_10k_sensors_1hz_postgres",
        "run": run,
        "publisher": published,
        "in_table": int(row["total"]),
        "lost": int(published["published"]) - int(row["total"]),
        "measured_rows": int(row["n"]),
        "commit_p50_ms": round(float(row["p50"]) * 1e3, 1),
        "commit_p99_ms": round(float(row["p99"]) * 1e3, 1),
        "commit_max_ms": round(float(row["max"]) * 1e3, 1),
        "daemon_ack_run_ms": seen.samples[-1].health["e2e_latency_run_ms"],
        "cpu_cores": measure.cpu_cores(measure.window(seen, WARMUP_S)),
        "reconciled": measure.shutdown(seen)["reconciled"],
    }


def into_blackhole(stream: str, sensors: int, seconds: float, run: int) -> dict[str, Any]:
    with workloads.scratch() as d:
        tmp = Path(d)
        sink = {"type": "blackhole", "spool_dir": str(tmp / "spool")}
        seen, published = fleet_into(stream, sink, tmp, sensors=sensors, seconds=seconds, run=run)
    end = measure.shutdown(seen)
    return {
        "scenario": "latency_10k_sensors_1hz_blackhole",
        "run": run,
        "publisher": published,
        "lost": int(published["published"]) - int(end["counters"]["written"]),
        "daemon_ack_run_ms": seen.samples[-1].health["e2e_latency_run_ms"],
        "cpu_cores": measure.cpu_cores(measure.window(seen, WARMUP_S)),
        "reconciled": end["reconciled"],
    }
