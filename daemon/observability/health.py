"""What `pipeline_health`, `STATUS=`, `/metrics` and `/healthz` report, computed in one place.

`HealthReporter` reads the live objects (counters, the gauges components publish in
`RunState.gauges`, per-stage `StageStats`, loop lag, RSS) when asked, so nothing is copied on the
hot path. It is the single source of truth: the log event, the systemd status line, the
Prometheus collector and the health verdict all come from here.

Gauges components publish (by their label, e.g. `sinks[0]`), read by name here:
`breaker` ("closed" | "open" | "half_open"), `open_since` (`time.monotonic()` when the breaker
left closed; without it the reporter notes the time it first saw the breaker not closed),
`spool_pending` (readings waiting), `spool_bytes`, `queue_depth`, and optionally `name` (e.g.
"jsonl-0") for the status line. Any other number is reported as is.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from daemon.counters import Counters
from daemon.observability.latency import LatencyWindow
from daemon.observability.logging import dropped_lines
from daemon.observability.looplag import LoopLagMonitor, rss_bytes
from daemon.runtime import RunState

BREAKER = "breaker"
OPEN_SINCE = "open_since"
SPOOL_PENDING = "spool_pending"
SPOOL_BYTES = "spool_bytes"
QUEUE_DEPTH = "queue_depth"
NAME = "name"
CLOSED = "closed"


class StageStats:
    """Readings in/out of one stage and the latency of its recent batches.

    `record()` runs once per batch, so it is a few attribute updates and one store into a
    fixed ring of the last `RESERVOIR` latencies (recent behaviour, bounded memory); the
    percentiles are computed only when someone asks.
    """

    RESERVOIR = 1024
    __slots__ = ("_filled", "_lat", "_next", "batches", "n_in", "n_out", "seconds")

    def __init__(self) -> None:
        self.n_in = 0
        self.n_out = 0
        self.batches = 0
        self.seconds = 0.0
        self._lat = array("d", bytes(8 * self.RESERVOIR))
        self._next = 0
        self._filled = 0

    def record(self, n_in: int, n_out: int, seconds: float) -> None:
        self.n_in += n_in
        self.n_out += n_out
        self.batches += 1
        self.seconds += seconds
        self._lat[self._next] = seconds
        self._next = (self._next + 1) % self.RESERVOIR
        if self._filled < self.RESERVOIR:
            self._filled += 1

    def latency(self) -> tuple[float, float]:
        """(p50, p99) seconds over the recent batches; zeros before the first."""
        if not self._filled:
            return 0.0, 0.0
        arr = np.frombuffer(self._lat, dtype=np.float64, count=self._filled)
        p50, p99 = np.percentile(arr, (50, 99))
        return float(p50), float(p99)


class PipelineView(Protocol):
    """What the reporter reads from the running pipeline (`daemon.topology.pipeline`)."""

    @property
    def stage_stats(self) -> Mapping[str, StageStats]: ...

    @property
    def queue_depth(self) -> int: ...


class RateMeter:
    """Per-second rates of growing totals between two calls; each consumer owns one so a
    `/metrics` scrape does not shorten the health log's window."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._at = clock()
        self._last: dict[str, int] = {}

    def rates(self, totals: Mapping[str, int]) -> tuple[dict[str, float], float]:
        now = self._clock()
        elapsed = now - self._at
        out = {}
        for key, total in totals.items():
            before = self._last.get(key, 0)
            if total < before:  # a rebuilt pipeline restarted its stage totals
                before = 0
            out[key] = (total - before) / elapsed if elapsed > 0 else 0.0
        self._at, self._last = now, dict(totals)
        return out, elapsed


class HealthReporter:
    def __init__(
        self,
        state: RunState,
        lag: LoopLagMonitor | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.lag = lag
        self.pipeline: PipelineView | None = None
        self._clock = clock
        self._started = clock()
        self._log_rates = RateMeter(clock)
        self._log_latency = LatencyWindow(state.latency)
        self._status_rate = 0.0
        self._last_written = state.counters.written
        self._written_at = self._started
        self._not_closed_since: dict[str, float] = {}

    def attach(self, pipeline: PipelineView) -> None:
        """Report on `pipeline` from now on (called for each pipeline a reload builds)."""
        self.pipeline = pipeline

    @property
    def counters(self) -> Counters:
        return self.state.counters

    # -- observations shared by every view ----------------------------------------------------
    def observe(self) -> None:
        """Note written-progress and breaker transitions; every view calls this first."""
        now = self._clock()
        written = self.state.counters.written
        if written != self._last_written:
            self._last_written, self._written_at = written, now
        for label, gauges in self.sink_gauges().items():
            state = gauges.get(BREAKER, CLOSED)
            if state == CLOSED:
                self._not_closed_since.pop(label, None)
            elif isinstance(since := gauges.get(OPEN_SINCE), int | float):
                self._not_closed_since[label] = float(since)
            else:
                self._not_closed_since.setdefault(label, now)

    def sink_gauges(self) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.state.gauges.items() if k.startswith("sinks[")}

    def breaker_states(self) -> dict[str, str]:
        return {k: str(v.get(BREAKER, CLOSED)) for k, v in self.sink_gauges().items()}

    def breaker_open_s(self) -> dict[str, float]:
        """Seconds each sink's breaker has not been closed (absent when closed)."""
        now = self._clock()
        return {k: now - since for k, since in self._not_closed_since.items()}

    def since_written_s(self) -> float:
        return self._clock() - self._written_at

    def stage_stats(self) -> Mapping[str, StageStats]:
        return self.pipeline.stage_stats if self.pipeline is not None else {}

    def queue_depths(self) -> dict[str, int]:
        depths = {"sources": self.pipeline.queue_depth} if self.pipeline is not None else {}
        for label, gauges in self.state.gauges.items():
            depth = gauges.get(QUEUE_DEPTH)
            if isinstance(depth, int):
                depths[label] = depth
        return depths

    def spool_totals(self) -> dict[str, int]:
        sinks = self.sink_gauges().values()
        return {
            "pending": sum(int(g.get(SPOOL_PENDING, 0)) for g in sinks),
            "bytes": sum(int(g.get(SPOOL_BYTES, 0)) for g in sinks),
        }

    # -- views --------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The `pipeline_health` fields; rates cover the time since the previous snapshot."""
        self.observe()
        counters = self.state.counters
        stats = self.stage_stats()
        totals = {"read": counters.read, "written": counters.written}
        for label, s in stats.items():
            totals[f"{label}.in"], totals[f"{label}.out"] = s.n_in, s.n_out
        rates, elapsed = self._log_rates.rates(totals)
        self._status_rate = rates["written"]
        stages = {}
        for label, s in stats.items():
            p50, p99 = s.latency()
            stages[label] = {
                "in": s.n_in,
                "out": s.n_out,
                "batches": s.batches,
                "in_per_s": round(rates[f"{label}.in"], 1),
                "out_per_s": round(rates[f"{label}.out"], 1),
                "p50_ms": round(p50 * 1e3, 3),
                "p99_ms": round(p99 * 1e3, 3),
            }
        lag = self.lag.stats().as_ms() if self.lag is not None else None
        return {
            "counters": counters.snapshot(),
            "read_per_s": round(rates["read"], 1),
            "written_per_s": round(rates["written"], 1),
            "interval_s": round(elapsed, 3),
            "stages": stages,
            "queues": self.queue_depths(),
            "breakers": self.breaker_states(),
            "spool": self.spool_totals(),
            "loop_lag_ms": lag,
            # reading `ts` to acknowledgement by every sink: since the last report, and the run
            "e2e_latency_ms": self._log_latency.take().as_ms(),
            "e2e_latency_run_ms": self.state.latency.stats().as_ms(),
            "rss_mb": round(rss_bytes() / 2**20, 1),
            "uptime_s": round(self._clock() - self._started, 1),
            "log_dropped": dropped_lines(),  # log lines a blocked stdout or log disk lost
            "gauges": self.state.gauges,
        }

    def status_text(self) -> str:
        """The short `STATUS=` line, e.g. "12345 readings/s, sinks: jsonl-0 closed"."""
        sinks = ", ".join(
            f"{g.get(NAME, label)} {g.get(BREAKER, CLOSED)}"
            for label, g in self.sink_gauges().items()
        )
        text = f"{self._status_rate:.0f} readings/s"
        return f"{text}, sinks: {sinks}" if sinks else text

    def problems(
        self, *, stale_after_s: float, breaker_open_max_s: float, loop_stall_s: float
    ) -> list[str]:
        """Why the daemon is not healthy (empty: data is flowing)."""
        self.observe()
        reasons = [
            f"{label} breaker not closed for {open_s:.1f} s (> {breaker_open_max_s:g} s)"
            for label, open_s in self.breaker_open_s().items()
            if open_s > breaker_open_max_s
        ]
        if self.lag is not None and self.lag.stalled(loop_stall_s):
            reasons.append(f"event loop stalled (lag >= {loop_stall_s:g} s)")
        idle = self.since_written_s()
        if idle > stale_after_s:
            reasons.append(f"nothing written for {idle:.1f} s (> {stale_after_s:g} s)")
        return reasons
