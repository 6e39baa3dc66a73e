"""psql `\\copy` against the ingestd `postgres` sink: the same rows into the same keyed table
shape, runs interleaved, medians and the ratio (not a test; nothing times this in the suite).

    .venv/bin/python -m benchmarks.postgres_copy [--rows N] [--runs 5] [--mode sink|daemon]

Both sides write N readings (1,000 sensors; batches of 8,192 = 8 sensors x 1,024 readings, as
the simulated source emits flat out) into a fresh table keyed (sensor_id, seq), created before
the clock starts, in database `test` on loopback; every table is dropped afterwards.

- psql: `\\copy ... FROM 'rows.csv' WITH (FORMAT csv)` of those rows, timed by psql's own
  `\\timing` (the COPY alone, not the process start).
- `--mode sink` (default): the sink as the daemon drives it, behind its `GuardedSink` (retry,
  breaker, spool) and the `FanOut` that counts: every batch delivered in turn, timed from the
  first delivery to the last acknowledgement (each one a committed transaction).
- `--mode daemon`: the daemon as a process, simulated sensors (N readings, no rate limit)
  through the default chain into the sink, timed from READY=1 to `shutdown_complete`; the rate
  is its `written` count over that time (the threshold filter drops a few readings). psql then
  loads exactly the rows the daemon wrote, exported in the order they were inserted (the key
  order a table is filled in changes what its index costs, so made-up rows would not compare).

Prints one JSON object per run, then the medians and the ratio (sink rows/s over psql rows/s:
of the two medians, and the median of each round's own ratio, which the load of the moment
moves less).
Each run also says the CPU it cost: the PostgreSQL server's (its whole process tree, exited
backends included, from /proc) and the client's (psql, or this process for the sink path).
Why both: on a shared machine the wall clock moves with everyone else's load, while the CPU
each side spends on the same rows barely does; a ratio of wall rates with a ratio of CPU tells
noise from a real difference. (Another client of the same server during a run counts too.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

from benchmarks import workloads
from benchmarks.daemonrun import run_daemon, timestamp
from benchmarks.procstat import tree_usage
from daemon.batch import Batch
from daemon.config.loader import SinkResilience
from daemon.config.types import Secret
from daemon.resilience import GuardedSink
from daemon.runtime import ComponentContext, Lifetime, RunState
from daemon.sensors import SENSORS
from daemon.sinks.postgres import PostgresConfig, PostgresSink
from daemon.sinks.postgres.schema import READING_COLUMNS, READING_KEY, create_target, names
from daemon.topology.fanout import FanOut

DSN = "postgresql://postgres@127.0.0.1:5432/test"
SENSOR_COUNT, RUN, RUNS_PER_BATCH = 1000, 1024, 8
_COLUMNS = names(READING_COLUMNS)
_TIMING = re.compile(r"Time: ([0-9.]+) ms")


def make_batches(rows: int) -> list[Batch]:
    """`rows` readings as the simulated source batches them flat out (see the module doc)."""
    batches: list[Batch] = []
    left, k = rows, 0
    while left > 0:
        parts = []
        for j in range(RUNS_PER_BATCH):
            if left <= 0:
                break
            i, lap = (
                (k * RUNS_PER_BATCH + j) % SENSOR_COUNT,
                (k * RUNS_PER_BATCH + j) // SENSOR_COUNT,
            )
            n = min(RUN, left)
            seq = np.arange(lap * RUN, lap * RUN + n, dtype=np.int64)
            value = 20.0 + 5.0 * np.sin(seq * 0.01 + i)
            parts.append(
                Batch.of_sensor(
                    f"bench-{i:05d}",
                    seq,
                    1.79e9 + seq * 0.1,
                    value,
                    seq % 97 == 0,
                    unit="celsius",
                    columns={"normalized": value / 25.0, "moving_avg": value - 0.5},
                )
            )
            left -= n
        batches.append(Batch.concat(parts))
        k += 1
    return batches


def write_csv(batches: list[Batch], path: Path) -> None:
    """The same rows as CSV in `READING_COLUMNS` order, timestamps ISO-8601 UTC."""
    with path.open("w") as out:
        for b in batches:
            micros = np.rint(b.ts * 1e6).astype("datetime64[us]")
            ts = np.datetime_as_string(micros, unit="us", timezone="UTC")
            ids, units = SENSORS.ids_array()[b.sensor], SENSORS.units_array()[b.sensor]
            quality = np.where(b.stale, "stale", "ok")
            cols = zip(
                ids.tolist(),
                b.seq.tolist(),
                ts.tolist(),
                b.value.tolist(),
                units.tolist(),
                quality.tolist(),
                b.columns["normalized"].tolist(),
                b.columns["moving_avg"].tolist(),
                strict=True,
            )
            out.writelines(",".join(map(str, row)) + "\n" for row in cols)


class ServerCpu:
    """CPU seconds of the PostgreSQL server's process tree (the postmaster and its children,
    reaped backends included), read from /proc; None where it cannot be read."""

    def __init__(self, postmaster: int | None) -> None:
        self.postmaster = postmaster

    @classmethod
    async def of(cls, db: asyncpg.Connection) -> ServerCpu:
        data_dir = await db.fetchval(
            "SELECT setting FROM pg_settings WHERE name = 'data_directory'"
        )
        try:
            return cls(int((Path(data_dir) / "postmaster.pid").read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            return cls(None)

    def now(self) -> float | None:
        usage = tree_usage(self.postmaster) if self.postmaster is not None else None
        return usage.cpu_s if usage is not None else None


def _cpu(before: float | None, after: float | None) -> float | None:
    return round(after - before, 3) if before is not None and after is not None else None


async def _count_and_drop(db: asyncpg.Connection, *tables: str) -> int:
    rows = int(await db.fetchval(f'SELECT count(*) FROM "{tables[0]}"'))
    await db.execute("DROP TABLE IF EXISTS " + ", ".join(f'"{t}"' for t in tables))
    return rows


async def psql_run(
    db: asyncpg.Connection, dsn: str, csv: Path, server: ServerCpu
) -> dict[str, Any]:
    table = f"bench_psql_{uuid.uuid4().hex[:8]}"
    await db.execute(create_target(f'"{table}"', READING_COLUMNS, READING_KEY))
    try:
        copy = f"\\copy \"{table}\" ({', '.join(_COLUMNS)}) FROM '{csv}' WITH (FORMAT csv)"
        server_before, client_before = server.now(), _children_cpu()
        psql = await asyncio.create_subprocess_exec(
            *("psql", dsn, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", "\\timing on", "-c", copy),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await psql.communicate()
        server_cpu, client_cpu = _cpu(server_before, server.now()), _children_cpu() - client_before
        if psql.returncode != 0:
            raise RuntimeError(f"psql failed: {err.decode(errors='replace')}")
        match = _TIMING.search(out.decode())
        assert match, out
        seconds = float(match.group(1)) / 1000.0
    finally:
        rows = await _count_and_drop(db, table)
    return {
        "side": "psql",
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_s": rows / seconds,
        "server_cpu_s": server_cpu,
        "client_cpu_s": round(client_cpu, 3),
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _known_keys(tables: tuple[str, str, str]) -> dict[str, Any]:
    """The table keys, only those this tree's sink has: the script runs against an older tree
    too (before `alerts_table`), for before/after numbers: copy it into that tree's
    benchmarks/ and run it there the same way."""
    keys = {"table": tables[0], "features_table": tables[1], "alerts_table": tables[2]}
    return {k: v for k, v in keys.items() if k in PostgresConfig.__dataclass_fields__}


async def sink_run(
    db: asyncpg.Connection, dsn: str, batches: list[Batch], server: ServerCpu
) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    tables = (f"bench_sink_{tag}", f"bench_sink_{tag}_f", f"bench_sink_{tag}_a")
    config = PostgresConfig(dsn=Secret(dsn), **_known_keys(tables))
    with tempfile.TemporaryDirectory(prefix="ingestd-bench-pg-") as tmp:
        state, lifetime = RunState.fresh(str(Path(tmp) / "dead-letter.jsonl")), Lifetime()
        ctx = ComponentContext("sinks[0]", "sink", state, lifetime)
        sink = PostgresSink(config, ctx)
        guarded = GuardedSink(
            sink, SinkResilience(spool_dir=str(Path(tmp) / "spool")), state, lifetime
        )
        fanout = FanOut([guarded], state)
        try:
            await guarded.open()  # the pool and the tables, before the clock starts
            server_before, client_before = server.now(), time.process_time()
            start = time.perf_counter()
            for batch in batches:
                state.counters.read += len(batch)
                await fanout.deliver(batch)
            seconds = time.perf_counter() - start
            server_cpu, client_cpu = (
                _cpu(server_before, server.now()),
                time.process_time() - client_before,
            )
            await guarded.close()
        finally:
            rows = await _count_and_drop(db, *tables)
        counters = state.counters
        assert counters.written == rows and counters.reconciles(), counters
    return {
        "side": "sink",
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_s": rows / seconds,
        "server_cpu_s": server_cpu,
        "client_cpu_s": round(client_cpu, 3),
    }


def daemon_run(dsn: str, rows: int, server: ServerCpu, csv: Path) -> dict[str, Any]:
    """The daemon process; the server's CPU is read around the whole run (its start and
    shutdown included), the daemon's from READY=1 to `shutdown_complete`. What it wrote is
    left in `csv`, in the order it was inserted, for psql to load the very same rows."""
    tag = uuid.uuid4().hex[:8]
    tables = (f"bench_daemon_{tag}", f"bench_daemon_{tag}_f", f"bench_daemon_{tag}_a")
    with workloads.scratch() as scratch:
        tmp = Path(scratch)
        sink = {
            "type": "postgres",
            "dsn": dsn,
            "spool_dir": str(tmp / "spool"),
        } | _known_keys(tables)
        source = workloads.simulated(SENSOR_COUNT, max_readings=rows // SENSOR_COUNT)
        text = workloads.config(
            workloads.daemon_section(tmp, health_s=1.0), source, workloads.default_chain(), sink
        )
        server_before = server.now()
        try:
            seen = run_daemon(text, tmp)
        finally:
            server_cpu = _cpu(server_before, server.now())
            written = asyncio.run(_export_and_drop(dsn, tables, csv))
    end = seen.event("shutdown_complete")
    assert seen.ready_at is not None
    seconds = timestamp(end) - seen.ready_at
    counted = int(end["counters"]["written"])
    assert counted == written, (counted, written)
    before, after = seen.ready_usage, seen.end_usage
    return {
        "side": "sink",
        "rows": written,
        "seconds": round(seconds, 3),
        "rows_per_s": written / seconds,
        "server_cpu_s": server_cpu,
        "client_cpu_s": round(after.cpu_s - before.cpu_s, 3) if before and after else None,
    }


async def _export_and_drop(dsn: str, tables: tuple[str, ...], csv: Path) -> int:
    db = await asyncpg.connect(dsn)
    try:
        cols = ", ".join(_COLUMNS)
        query = f'SELECT {cols} FROM "{tables[0]}" ORDER BY ctid'  # ctid: the insertion order
        await db.copy_from_query(query, output=str(csv), format="csv")
        return await _count_and_drop(db, *tables)
    finally:
        await db.close()


async def main_async(args: argparse.Namespace) -> int:
    batches = make_batches(args.rows) if args.mode == "sink" else []
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ingestd-bench-csv-") as tmp:
        csv = Path(tmp) / "rows.csv"
        if batches:
            write_csv(batches, csv)
        db = await asyncpg.connect(args.dsn)
        server = await ServerCpu.of(db)
        # interleaved, so both sides see the same machine; the daemon goes first in its runs
        # (psql loads the rows it wrote), the sink path second (psql's rows are made up front)
        sides = ("psql", "sink") if args.mode == "sink" else ("sink", "psql")
        try:
            for run in range(args.runs):
                for side in sides:
                    if side == "psql":
                        result = await psql_run(db, args.dsn, csv, server)
                    elif args.mode == "sink":
                        result = await sink_run(db, args.dsn, batches, server)
                    else:
                        result = await asyncio.to_thread(
                            daemon_run, args.dsn, args.rows, server, csv
                        )
                    result |= {"run": run, "mode": args.mode if side == "sink" else "psql"}
                    result["rows_per_s"] = round(result["rows_per_s"])
                    print(json.dumps(result), flush=True)
                    results.append(result)
        finally:
            await db.close()
    summary: dict[str, Any] = {"rows": args.rows, "runs": args.runs, "mode": args.mode}
    for side in ("psql", "sink"):
        mine = [r for r in results if r["side"] == side]
        summary[f"{side}_rows_per_s_median"] = round(
            statistics.median(r["rows_per_s"] for r in mine)
        )
        cpu = [r["server_cpu_s"] + r["client_cpu_s"] for r in mine if r["server_cpu_s"] is not None]
        summary[f"{side}_cpu_s_median"] = round(statistics.median(cpu), 3) if cpu else None
    pairs = [
        sink["rows_per_s"] / psql["rows_per_s"]
        for psql in results
        for sink in results
        if psql["side"] == "psql" and sink["side"] == "sink" and psql["run"] == sink["run"]
    ]
    summary["ratio_by_run_median"] = round(statistics.median(pairs), 2)  # paired by round
    summary["ratio"] = round(
        summary["sink_rows_per_s_median"] / summary["psql_rows_per_s_median"], 2
    )
    if summary["sink_cpu_s_median"] and summary["psql_cpu_s_median"]:
        # CPU per row, psql's over the sink's: above 1, the sink spends less on the same rows
        per_row = {
            side: summary[f"{side}_cpu_s_median"]
            / statistics.median(r["rows"] for r in results if r["side"] == side)
            for side in ("psql", "sink")
        }
        summary["cpu_ratio"] = round(per_row["psql"] / per_row["sink"], 2)
    print(json.dumps(summary), flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mode", choices=("sink", "daemon"), default="sink")
    parser.add_argument("--dsn", default=DSN)
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
