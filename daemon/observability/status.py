"""`GET /status`: the whole running daemon as one JSON document, for `ingestd top` and for curl.

Why a JSON endpoint beside `/metrics`: a dashboard wants the structure (which stage is which,
each sink's breaker and spool together, the taps attached), and parsing Prometheus text back
into it would be the harder half of `ingestd top`. Like the other views it is read from the live
objects through the `HealthReporter` when asked, so it costs nothing between requests.

Totals are the run's counters; rates are over a trailing window (the newest earlier request at
least `RATE_WINDOW_S` old, else since the start), so several clients polling at once do not
shorten each other's windows the way a per-call meter would. A client that wants its own rates
(`ingestd top`) takes differences of the totals over `monotonic_s`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from daemon.observability.health import (
    BREAKER,
    CLOSED,
    NAME,
    OPEN_SINCE,
    SPOOL_BYTES,
    SPOOL_PENDING,
    HealthReporter,
    PipelineView,
    StageStats,
)
from daemon.observability.looplag import rss_bytes
from daemon.observability.tap import TapBoard

VERSION = 1
RATE_WINDOW_S = 1.0
HISTORY_S = 10.0
TOTALS = ("read", "written", "filtered", "rejected", "spooled", "replayed", "unspooled")
# Shown as the sink's own fields; the rest of its gauges are passed on as they are.
_SINK_FIELDS = {BREAKER, OPEN_SINCE, SPOOL_PENDING, SPOOL_BYTES, NAME}


@runtime_checkable
class DetailedPipeline(PipelineView, Protocol):
    """What a real pipeline adds to `PipelineView` (`daemon.topology.pipeline.Pipeline`)."""

    @property
    def sink_stats(self) -> Mapping[str, StageStats]: ...

    def component_types(self) -> dict[str, str]: ...


class RateWindow:
    """Rates of growing totals over a trailing window of earlier calls' samples."""

    def __init__(self, clock: Callable[[], float], started: float) -> None:
        self._clock = clock
        # (when, totals) of earlier calls, the start first; bounded in age and in number
        self._samples: deque[tuple[float, dict[str, int]]] = deque([(started, {})], maxlen=1000)

    def rates(self, totals: dict[str, int]) -> tuple[dict[str, float], float]:
        """Per-second rates of `totals` over the window, and the window's length in seconds."""
        now = self._clock()
        samples = self._samples
        while (
            len(samples) > 1
            and now - samples[0][0] > HISTORY_S
            and now - samples[1][0] >= RATE_WINDOW_S
        ):
            samples.popleft()  # too old, and a younger one still spans the window
        base_at, base = samples[0]
        for at, sample in reversed(self._samples):
            if now - at >= RATE_WINDOW_S:
                base_at, base = at, sample
                break
        elapsed = now - base_at
        out = {}
        for key, total in totals.items():
            before = base.get(key, 0)
            if total < before:  # a rebuilt pipeline restarted its stage totals
                before = 0
            out[key] = round((total - before) / elapsed, 1) if elapsed > 0 else 0.0
        self._samples.append((now, dict(totals)))
        return out, elapsed


class StatusView:
    """Builds the `/status` document; `health` gives the `/healthz` verdict's reasons."""

    def __init__(
        self,
        reporter: HealthReporter,
        taps: TapBoard,
        health: Callable[[], list[str]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reporter = reporter
        self.taps = taps
        self._health = health
        self._clock = clock
        self._started = clock()
        self._rates = RateWindow(clock, self._started)

    def document(self) -> dict[str, Any]:
        r = self.reporter
        problems = self._health()  # observes breakers first, as every view does
        counters = r.counters
        stats = r.stage_stats()
        pipeline = r.pipeline
        detailed = pipeline if isinstance(pipeline, DetailedPipeline) else None
        sink_stats: Mapping[str, StageStats] = detailed.sink_stats if detailed else {}
        types: dict[str, str] = detailed.component_types() if detailed else {}
        totals = {name: int(getattr(counters, name)) for name in TOTALS}
        keyed = dict(totals)
        for label, s in stats.items():
            keyed[f"{label}.in"], keyed[f"{label}.out"] = s.n_in, s.n_out
        rates, window = self._rates.rates(keyed)
        lag = r.lag.stats().as_ms() if r.lag is not None else None
        return {
            "version": VERSION,
            "monotonic_s": round(self._clock(), 6),
            "time": round(time.time(), 3),
            "uptime_s": round(self._clock() - self._started, 3),
            "health": {"status": "unhealthy" if problems else "ok", "reasons": problems},
            "totals": {**totals, "in_flight": counters.in_flight},
            "derived": {"features": counters.features, "alerts": counters.alerts},
            "rates": {name: rates[name] for name in TOTALS},
            "rate_window_s": round(window, 3),
            "stages": [_stage(label, s, types.get(label), rates) for label, s in stats.items()],
            "sources": [
                {"label": label, "type": types.get(label), "gauges": _plain(gauges)}
                for label, gauges in r.state.gauges.items()
                if label.startswith("sources[")
            ],
            "sinks": self._sinks(sink_stats, types),
            "queues": r.queue_depths(),
            "loop_lag_ms": lag,
            "e2e_latency_ms": r.state.latency.stats().as_ms(),
            "rss_mb": round(rss_bytes() / 2**20, 1),
            "taps": self.taps.describe(),
        }

    def _sinks(
        self, sink_stats: Mapping[str, StageStats], types: dict[str, str]
    ) -> list[dict[str, Any]]:
        gauges = self.reporter.sink_gauges()
        open_for = self.reporter.breaker_open_s()
        out = []
        for label in dict.fromkeys([*sink_stats, *gauges]):
            g = gauges.get(label, {})
            p50, p99 = sink_stats[label].latency() if label in sink_stats else (0.0, 0.0)
            out.append(
                {
                    "label": label,
                    "type": types.get(label),
                    "name": g.get(NAME),
                    "breaker": str(g.get(BREAKER, CLOSED)),
                    "open_for_s": round(open_for.get(label, 0.0), 3),
                    "spool_pending": int(g.get(SPOOL_PENDING, 0)),
                    "spool_bytes": int(g.get(SPOOL_BYTES, 0)),
                    "write_p50_ms": round(p50 * 1e3, 3),
                    "write_p99_ms": round(p99 * 1e3, 3),
                    "gauges": _plain({k: v for k, v in g.items() if k not in _SINK_FIELDS}),
                }
            )
        return out


def _stage(label: str, s: StageStats, kind: str | None, rates: dict[str, float]) -> dict[str, Any]:
    p50, p99 = s.latency()
    return {
        "label": label,
        "type": kind,
        "in": s.n_in,
        "out": s.n_out,
        "batches": s.batches,
        "in_per_s": rates[f"{label}.in"],
        "out_per_s": rates[f"{label}.out"],
        "p50_ms": round(p50 * 1e3, 3),
        "p99_ms": round(p99 * 1e3, 3),
    }


def _plain(gauges: Mapping[str, Any]) -> dict[str, Any]:
    """The gauges JSON can hold as they are (numbers, text, booleans, None)."""
    return {
        k: v if isinstance(v, bool | int | float | str) or v is None else repr(v)
        for k, v in gauges.items()
    }
