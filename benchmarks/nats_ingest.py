"""`python -m benchmarks.nats_ingest`: NATS JetStream -> PostgreSQL, against simulated ->
PostgreSQL in the same invocation, and publish-to-commit latency at 10,000 sensors x 1 Hz.

Rates. Each run is the daemon as a process (source -> postgres sink, no stages, so every reading
lands) on a fixed workload, timed from READY=1 (connected, bound, sink open) to the first
`pipeline_health` (every 0.1 s, the same for both) whose `written` covers the workload. The NATS
workload is a stream pre-filled once (JetStream publishes, each confirmed stored) and read by a
new durable consumer per run, so no publisher competes with the daemon for the two cores and
every run reads the same bytes. Two message shapes: one reading a message, and 100-reading JSON
arrays (a gateway batching its sensors). Rounds run round-robin, so a busy moment of the
machine hits every pipeline alike; the ratio is of medians.

Latency (`benchmarks.nats_latency`): a publisher process sends 10,000 sensors x 1 Hz, each
reading stamped `ts = now` as published, into the daemon into PostgreSQL, whose column default
`clock_timestamp()` stamps each row as it is written; and the same into the blackhole sink,
where only the daemon's histogram (ts -> acknowledged) measures. Each latency run has a stream
of its own (a run must not read the last one's messages).

Stdout: one JSON object per run, then one `summary` per headline number. Exit 1 when a run does
not reconcile or loses a reading.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import uuid
from pathlib import Path
from typing import Any

import nats
import orjson

from benchmarks import configs, measure, nats_latency, nats_publisher, workloads
from benchmarks.daemonrun import Observed, run_daemon, timestamp
from benchmarks.nats_latency import NATS_URL, nats_source, postgres_sink, sql

HEALTH_S = 0.1
RATE_LIMIT = 0.8  # nats -> postgres at least this times simulated -> postgres
LATENCY_LIMIT_MS = 250.0


def covered(readings: int, seen: Observed) -> float:
    """When (daemon clock) `written` first reached `readings`: a health report or the end."""
    for event in seen.events:
        name = event.get("event")
        if name in ("pipeline_health", "shutdown_complete") and (
            int(event["counters"]["written"]) >= readings
        ):
            return timestamp(event)
    raise RuntimeError(f"the daemon never wrote {readings} readings")


def rate_run(source: dict[str, Any], readings: int, label: str) -> dict[str, Any]:
    """One daemon: `source` -> postgres until `readings` are written; the rate from READY=1.
    A NATS source never ends, so that daemon is sent SIGTERM then; the simulated one ends by
    itself (a SIGTERM after its shutdown began would find the handlers gone and kill it)."""
    table = f"bench_{uuid.uuid4().hex[:10]}"
    with workloads.scratch() as d:
        tmp = Path(d)
        text = workloads.config(
            workloads.daemon_section(tmp, health_s=HEALTH_S), source, [], postgres_sink(tmp, table)
        )

        def done(seen: Observed) -> bool:
            last = seen.samples[-1].health if seen.samples else None
            return last is not None and int(last["counters"]["written"]) >= readings

        try:
            ends = source["type"] == "simulated"
            seen = run_daemon(text, tmp, stop=None if ends else done, timeout_s=600)
            [row] = sql(f'SELECT count(*) AS n FROM "{table}"')
        finally:
            sql(configs.drop_postgres_tables(table))
    assert seen.ready_at is not None, "no READY=1"
    seconds = covered(readings, seen) - seen.ready_at
    end = measure.shutdown(seen)
    return {
        "scenario": label,
        "readings": readings,
        "in_table": int(row["n"]),
        "seconds": round(seconds, 3),
        "rate": round(readings / seconds),
        "cpu_cores": measure.run_cpu_cores(seen),
        "reconciled": end["reconciled"],
        "lost": readings - int(row["n"]),
    }


def summary(name: str, values: list[float], limit: float | None, higher: bool) -> dict[str, Any]:
    med = statistics.median(values)
    met = None if limit is None else (med >= limit if higher else med <= limit)
    return {
        "summary": name,
        "median": round(med, 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "runs": len(values),
        "limit": limit,
        "met": met,
    }


async def delete_streams(*names: str) -> None:
    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        for name in names:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(name)
    finally:
        await nc.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--readings", type=int, default=500_000, help="per rate run")
    parser.add_argument("--singles", type=int, default=100_000, help="one-reading messages")
    parser.add_argument("--seconds", type=float, default=20.0, help="per latency run")
    parser.add_argument("--sensors", type=int, default=10_000, help="latency fleet size")
    parser.add_argument("--quick", action="store_true", help="a tiny workload, one run")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.readings, args.singles = 1, 20_000, 5000
        args.seconds, args.sensors = 4.0, 1000
    tag = uuid.uuid4().hex[:8]
    single, array = f"BS{tag}", f"BA{tag}"
    out: list[dict[str, Any]] = []
    ok = True

    def emit(obj: dict[str, Any]) -> None:
        nonlocal ok
        ok &= obj.get("reconciled", True) is not False and not obj.get("lost", 0)
        out.append(obj)
        print(orjson.dumps(obj).decode(), flush=True)

    emit({"load_at_start": os.getloadavg(), "cpus": os.cpu_count()})  # a shared machine?
    try:
        for stream, count, per in ((single, args.singles, 1), (array, args.readings, 100)):
            took = asyncio.run(
                nats_publisher.prefill(NATS_URL, stream, stream.lower(), count, per_message=per)
            )
            emit({"prefill": stream, "readings": count, "per_message": per, "seconds": took})
        sim_sensors = 500
        for run in range(args.runs):
            sim = workloads.simulated(sim_sensors, max_readings=args.readings // sim_sensors)
            emit(rate_run(sim, args.readings, "simulated_postgres") | {"run": run})
            src = nats_source(single, single.lower(), f"r{run}")
            emit(rate_run(src, args.singles, "nats_1_reading_per_message") | {"run": run})
            src = nats_source(array, array.lower(), f"r{run}")
            emit(rate_run(src, args.readings, "nats_100_readings_per_message") | {"run": run})
            took = asyncio.run(bare_fetch(single, args.singles, f"bare{run}"))
            emit({"scenario": "nats_py_bare_fetch_ack", "run": run, "rate": round(took)})
        for run in range(args.runs):
            for into in (nats_latency.into_postgres, nats_latency.into_blackhole):
                emit(_on_own_stream(into, f"BL{tag}", args.sensors, args.seconds, run))
    finally:
        asyncio.run(delete_streams(single, array))
    _summaries(out, emit)
    emit({"load_at_end": os.getloadavg()})
    return 0 if ok else 1  # the limits are reported; the status is about correctness


async def bare_fetch(stream: str, messages: int, durable: str) -> float:
    """The client's own ceiling: nats-py fetching and acking the one-reading stream with
    nothing else to do (no decode, no pipeline, no sink), in messages per second."""
    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(f"{stream.lower()}.>", durable=durable, stream=stream)
        loop = asyncio.get_running_loop()
        began, got = loop.time(), 0
        while got < messages:
            with contextlib.suppress(TimeoutError):
                for msg in await sub.fetch(1024, timeout=0.005):
                    await msg.ack()
                    got += 1
        return got / (loop.time() - began)
    finally:
        await nc.close()


def _on_own_stream(
    into: Any, prefix: str, sensors: int, seconds: float, run: int
) -> dict[str, Any]:
    """A latency run on a stream of its own (a run must not read the last one's messages)."""
    fleet = f"{prefix}{uuid.uuid4().hex[:6]}"
    asyncio.run(_fleet_stream(fleet))
    try:
        result: dict[str, Any] = into(fleet, sensors, seconds, run)
    finally:
        asyncio.run(delete_streams(fleet))
    return result


async def _fleet_stream(name: str) -> None:
    nc = await nats.connect(NATS_URL)
    try:
        await nats_publisher.create_stream(nc.jetstream(), name, name.lower())
    finally:
        await nc.close()


def _summaries(out: list[dict[str, Any]], emit: Any) -> None:
    """The medians, the ratios to simulated -> postgres and the limits, as JSON and a table."""

    def of(scenario: str, key: str) -> list[float]:
        return [float(o[key]) for o in out if o.get("scenario", "").startswith(scenario)]

    sim = summary("simulated_postgres_rate", of("simulated_postgres", "rate"), None, True)
    emit(sim)
    rows = [("simulated -> postgres, readings/s", sim["median"], sim["min"], sim["max"], "")]
    bare = summary("nats_py_bare_fetch_ack_rate", of("nats_py_bare", "rate"), None, True)
    emit(bare)
    rows.append(
        ("bare nats-py fetch+ack, messages/s", bare["median"], bare["min"], bare["max"], "")
    )
    for shape in ("nats_1_reading_per_message", "nats_100_readings_per_message"):
        got = summary(f"{shape}_rate", of(shape, "rate"), None, True)
        emit(got)
        ratio = round(got["median"] / sim["median"], 3)
        emit({"ratio": f"{shape} / simulated_postgres", "value": ratio, "limit": RATE_LIMIT})
        met = "met" if ratio >= RATE_LIMIT else "NOT met"
        rows.append((f"{shape}, readings/s", got["median"], got["min"], got["max"], ""))
        rows.append((f"  ratio to simulated (>= {RATE_LIMIT})", ratio, "", "", met))
    pg, hole = "latency_10k_sensors_1hz_postgres", "latency_10k_sensors_1hz_blackhole"
    for key in ("commit_p50_ms", "commit_p99_ms"):
        limit = LATENCY_LIMIT_MS if key == "commit_p99_ms" else None
        got = summary(f"latency_{key}", of(pg, key), limit, False)
        emit(got)
        met = "" if got["met"] is None else ("met" if got["met"] else "NOT met")
        rows.append((f"10k sensors x 1 Hz, {key}", got["median"], got["min"], got["max"], met))
    for scenario, what in ((pg, "postgres"), (hole, "blackhole")):
        acked = [float(o["daemon_ack_run_ms"]["p99"]) for o in out if o.get("scenario") == scenario]
        got = summary(f"{scenario}_daemon_ack_p99_ms", acked, None, False)
        emit(got)
        name = f"  daemon's p99 ts -> acked, {what}"
        rows.append((name, got["median"], got["min"], got["max"], ""))
    sys.stderr.write(f"{'':44} {'median':>12} {'min':>12} {'max':>12}\n")
    for name, med, lo, hi, met in rows:
        sys.stderr.write(f"{name:44} {med!s:>12} {lo!s:>12} {hi!s:>12} {met}\n")


if __name__ == "__main__":
    sys.exit(main())
