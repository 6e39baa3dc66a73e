"""What `ingestd tap` costs the daemon: nothing while nobody taps, little while someone does.

    .venv/bin/python -m benchmarks.tap_cost [--runs 5] [--seconds 3] [--quick]

Four variants of one open-ended workload (1,000 simulated sensors flat out through the default
chain into a jsonl sink on /dev/null, HTTP on), run round-robin `--runs` rounds so a busy moment
of the shared machine hits all alike:

  before     the data path as it was before the tap (`benchmarks/pretap.py`, installed at
             interpreter start): no hook tests, no per-sink delivery timing
  untapped   this build, nobody tapping: one attribute test per batch per hook point
  sampled    one tap at stages[2] with sample=0.01, its reader reading everything
  full       one tap at stages[2] with every record, its reader as fast as it can (the daemon
             drops what it cannot keep up with)

A tapped run attaches its reader at the first `pipeline_health`; every variant then measures
the same window: from `WARM_S` after that report for `--seconds`, as the growth of `read`
between two of the daemon's own reports (`measure.rate`), and the CPU time of the daemon's
process tree per reading over it. On a shared machine the second is the steadier measure of
what a tap costs: another process taking a core slows the rate, much less the work a reading
takes. Then, in this process, the tap's own CPU time (`in_process`): the hook test per batch,
and per reading what `offer` costs the data path and `take` (the encoding) the reader's writer.
Stdout: one JSON object per run, one summary per variant (medians, min - max of the rate, each
against `untapped`), then the in-process numbers; stderr: the table.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import timeit
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks import measure, workloads
from benchmarks.daemonrun import ROOT, Observed, run_daemon
from benchmarks.hotpath import chunks
from daemon.observability.tap import Tap, TapPoint
from daemon.sources.simulated.generate import generate
from daemon.sources.simulated.model import SensorModel, SensorState

SENSORS = 1000
HEALTH_S = 0.25
WARM_S = 1.0
AT = "stages[2]"
VARIANTS: dict[str, float | None] = {"before": None, "untapped": None, "sampled": 0.01, "full": 1.0}


class Reader(threading.Thread):
    """An `ingestd tap` reader: GET /tap, count records and keep the last status line."""

    def __init__(self, port: int, sample: float) -> None:
        super().__init__(daemon=True)
        self.port, self.sample = port, sample
        self.records = 0
        self.note: dict[str, Any] = {}
        self.first = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", f"/tap?at={AT}&sample={self.sample:g}")
            resp = conn.getresponse()
            if resp.status != 200:
                self.error = f"{resp.status} {resp.read()[:200]!r}"
                return
            while line := resp.readline():
                if line.startswith(b'{"tap":'):
                    self.note = json.loads(line)["tap"]
                else:
                    self.records += 1
                    self.first.set()
        except (OSError, http.client.HTTPException) as exc:
            self.error = repr(exc)
        finally:
            conn.close()
            self.first.set()


def run_once(variant: str, seconds: float) -> dict[str, Any]:
    sample = VARIANTS[variant]
    state: dict[str, Any] = {"port": None, "reader": None, "from": None}

    def watch(seen: Observed) -> bool:
        """Called on every log line: attach the reader, then stop once the window is full."""
        event = seen.events[-1]
        if event.get("event") == "http_started":
            state["port"] = int(event["port"])
        if event.get("event") != "pipeline_health":
            return False
        if state["from"] is None:
            state["from"] = seen.samples[-1].at + WARM_S
            if sample is not None:
                state["reader"] = Reader(state["port"], sample)
                state["reader"].start()
        return bool(seen.samples[-1].at >= state["from"] + seconds)

    with workloads.scratch() as d, _pretap_on(variant == "before"):
        tmp = Path(d)
        daemon = workloads.daemon_section(tmp, health_s=HEALTH_S)
        daemon["http"] = {"enabled": True, "host": "127.0.0.1", "port": 0}
        text = workloads.config(
            daemon,
            workloads.simulated(SENSORS),
            workloads.default_chain(),
            workloads.jsonl(tmp, path="/dev/null", fsync="never"),
        )
        seen = run_daemon(text, tmp, stop=watch)
    reader: Reader | None = state["reader"]
    if reader is not None:
        reader.join(timeout=30)
        if reader.error or not reader.records:
            raise RuntimeError(f"{variant}: the tap reader failed: {reader.error}")
    window = [s for s in measure.window(seen, 0.0) if s.at >= state["from"]]
    end = measure.shutdown(seen)
    rate, cores = measure.rate(window), measure.cpu_cores(window)
    return {
        "variant": variant,
        "rate": rate,
        "cpu_cores": cores,
        # CPU of the daemon's process tree per reading: what the tap costs in work, which a
        # busy shared machine blurs less than the wall-clock rate
        "cpu_ns_per_reading": round(cores / rate * 1e9, 1) if rate and cores else None,
        "window_s": round(window[-1].at - window[0].at, 3) if len(window) > 1 else 0.0,
        "tap_records": reader.records if reader else 0,
        "tap_dropped": int(reader.note.get("dropped", 0)) if reader else 0,
        "reconciled": end["reconciled"],
    }


@contextlib.contextmanager
def _pretap_on(on: bool) -> Iterator[None]:
    """While on: daemons started from here install `benchmarks.pretap` at interpreter start."""
    if not on:
        yield
        return
    before = os.environ.get("PYTHONPATH")
    with tempfile.TemporaryDirectory(prefix="ingestd-pretap-") as d:
        (Path(d) / "sitecustomize.py").write_text(
            "from benchmarks.pretap import install\n\ninstall()\n"
        )
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [d, str(ROOT), before]))
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = before


def in_process(batches_n: int = 40) -> dict[str, Any]:
    """The tap's own CPU time per reading, on the simulated source's real batches (8,192
    readings each, as flat out): the untapped hook test per batch, and `offer` (in the data
    path) and `take` (in the reader's writer: the encoding) per reading for each sample rate.
    Best of 5 by process time, so other processes skew it little."""
    model = SensorModel.build(
        sensors=SENSORS, seed=7, rate_hz=1e9, id_prefix="S", anomaly_rate=0.05, fault_rate=0.0
    )
    state = SensorState()
    state.grow(SENSORS)
    batches = [generate(model, state, chunks(k), 1e9, 30.0)[0] for k in range(batches_n)]
    n = sum(len(b) for b in batches)
    point = TapPoint(AT)
    loops = 1_000_000
    timer = timeit.Timer("if point.taps: pass", timer=time.process_time, globals={"point": point})
    hook = min(timer.repeat(repeat=5, number=loops))
    out: dict[str, Any] = {
        "in_process": "tap",
        "readings_per_batch": n // len(batches),
        "hook_ns_per_batch": round(hook / loops * 1e9, 1),
    }
    for name, sample in (("sampled", 0.01), ("full", 1.0)):
        offer = take = float("inf")
        for _ in range(5):
            tap = Tap(AT, sample=sample, max_records=n)
            began = time.process_time()
            for b in batches:
                tap.offer(b)
            offered = time.process_time()
            tap.take()
            offer = min(offer, offered - began)
            take = min(take, time.process_time() - offered)
        out[f"{name}_offer_ns_per_reading"] = round(offer / n * 1e9, 1)
        out[f"{name}_take_ns_per_reading"] = round(take / n * 1e9, 1)
    return out


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rates = {v: [r["rate"] for r in runs if r["variant"] == v and r["rate"]] for v in VARIANTS}
    cpu = {v: [r["cpu_ns_per_reading"] for r in runs if r["variant"] == v] for v in VARIANTS}
    base = statistics.median(rates["untapped"]) if rates["untapped"] else None
    base_cpu = statistics.median(c for c in cpu["untapped"] if c) if rates["untapped"] else None
    out = []
    for variant, values in rates.items():
        if not values:
            continue
        median = statistics.median(values)
        cpu_ns = statistics.median(c for c in cpu[variant] if c)
        mine = [r for r in runs if r["variant"] == variant]
        out.append(
            {
                "summary": variant,
                "median": round(median),
                "min": round(min(values)),
                "max": round(max(values)),
                "runs": len(values),
                "vs_untapped": round(median / base, 3) if base else None,
                "cpu_ns_per_reading": round(cpu_ns, 1),
                "cpu_vs_untapped": round(cpu_ns / base_cpu, 3) if base_cpu else None,
                "tap_records_median": statistics.median(r["tap_records"] for r in mine),
                "tap_dropped_median": statistics.median(r["tap_dropped"] for r in mine),
                "reconciled": all(r["reconciled"] for r in mine),
            }
        )
    return out


def table(summaries: list[dict[str, Any]]) -> str:
    lines = [
        f"{'variant':<10} {'readings/s (median)':>20} {'min - max':>22} {'vs untapped':>12}"
        f" {'CPU ns/reading':>15} {'vs untapped':>12}"
    ]
    for s in summaries:
        span = f"{s['min']:,} - {s['max']:,}"
        lines.append(
            f"{s['summary']:<10} {s['median']:>20,} {span:>22} {s['vs_untapped']:>12}"
            f" {s['cpu_ns_per_reading']:>15} {s['cpu_vs_untapped']:>12}"
            + (f"   tap: {s['tap_records_median']:,.0f} records, "
               f"{s['tap_dropped_median']:,.0f} dropped" if s["tap_records_median"] else "")
        )  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None, emit: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tap_cost", description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="rounds of every variant (5)")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured window per run (3)")
    parser.add_argument("--quick", action="store_true", help="1 round of 1 s (for a smoke test)")
    args = parser.parse_args(argv)
    runs_n, seconds = (1, 1.0) if args.quick else (args.runs, args.seconds)
    runs = []
    for i in range(runs_n):
        for variant in VARIANTS:
            result = {"run": i, **run_once(variant, seconds)}
            runs.append(result)
            emit(json.dumps(result))
    summaries = summarize(runs)
    for s in summaries:
        emit(json.dumps(s))
    micro = in_process(8 if args.quick else 40)
    emit(json.dumps(micro))
    print(table(summaries), file=sys.stderr)
    print(
        f"in process: hook test {micro['hook_ns_per_batch']} ns a batch of "
        f"{micro['readings_per_batch']:,}; per reading, offer + take: sampled "
        f"{micro['sampled_offer_ns_per_reading']} + {micro['sampled_take_ns_per_reading']} ns, "
        f"full {micro['full_offer_ns_per_reading']} + {micro['full_take_ns_per_reading']} ns",
        file=sys.stderr,
    )
    return 0 if all(s["reconciled"] for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
