"""Prometheus metrics read from the live objects at scrape time.

Why a custom collector instead of `Counter.inc()` calls: the pipeline already counts everything
it must (`Counters`, `StageStats`, component gauges) for its own reconciliation. Incrementing a
second set of metric objects on the hot path would double the work and could drift; a collector
just reads the truth when Prometheus asks, and costs nothing between scrapes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from daemon.counters import Counters
from daemon.observability.health import (
    BREAKER,
    CLOSED,
    OPEN_SINCE,
    SPOOL_BYTES,
    SPOOL_PENDING,
    HealthReporter,
    RateMeter,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BREAKER_STATES = ("closed", "open", "half_open")
_COUNTER_DOCS = {
    "read": "readings that entered from sources",
    "replayed": "readings that entered from a spool left by an earlier run",
    "written": "readings acknowledged by every sink",
    "filtered": "readings dropped on purpose by a stage",
    "rejected": "readings dead-lettered as bad input",
    "spooled": "readings put into a spool",
    "unspooled": "spooled readings later delivered from the spool",
    "read_failures": "failed sensor reads with no last-known-good value",
    "features": "derived feature records emitted",
    "spool_corrupt": "spool records skipped for a bad CRC",
}
_CONSUMED = {BREAKER, OPEN_SINCE, SPOOL_PENDING, SPOOL_BYTES}


class IngestdCollector(Collector):
    """Every ingestd metric, built from a `HealthReporter` on each scrape."""

    def __init__(self, reporter: HealthReporter) -> None:
        self.reporter = reporter
        self._rates = RateMeter()

    def collect(self) -> Iterator[Metric]:
        r = self.reporter
        r.observe()
        yield from _counter_metrics(r.counters)
        rates, _ = self._rates.rates({"read": r.counters.read, "written": r.counters.written})
        per_s = GaugeMetricFamily(
            "ingestd_readings_per_second",
            "readings per second since the previous scrape",
            labels=["direction"],
        )
        for direction, rate in rates.items():
            per_s.add_metric([direction], rate)
        yield per_s
        yield from self._stage_metrics()
        yield from self._sink_metrics()
        yield from self._other_gauges()
        if r.lag is not None:
            stats = r.lag.stats()
            lag = GaugeMetricFamily(
                "ingestd_event_loop_lag_seconds",
                "event-loop wake-up lateness over recent samples",
                labels=["quantile"],
            )
            lag.add_metric(["0.5"], stats.p50_s)
            lag.add_metric(["0.99"], stats.p99_s)
            lag.add_metric(["1"], stats.max_s)
            yield lag

    def _stage_metrics(self) -> Iterator[Metric]:
        labels = ["stage"]
        n_in = CounterMetricFamily(
            "ingestd_stage_readings_in", "readings handed to a stage", labels=labels
        )
        n_out = CounterMetricFamily(
            "ingestd_stage_readings_out", "readings a stage passed on", labels=labels
        )
        batches = CounterMetricFamily(
            "ingestd_stage_batches", "batches a stage produced", labels=labels
        )
        latency = GaugeMetricFamily(
            "ingestd_stage_latency_seconds",
            "time a batch spends in a stage, over recent batches",
            labels=["stage", "quantile"],
        )
        for label, s in self.reporter.stage_stats().items():
            n_in.add_metric([label], s.n_in)
            n_out.add_metric([label], s.n_out)
            batches.add_metric([label], s.batches)
            p50, p99 = s.latency()
            latency.add_metric([label, "0.5"], p50)
            latency.add_metric([label, "0.99"], p99)
        queue = GaugeMetricFamily(
            "ingestd_queue_depth_batches", "batches waiting in a queue", labels=["queue"]
        )
        for name, depth in self.reporter.queue_depths().items():
            queue.add_metric([name], depth)
        yield from (n_in, n_out, batches, latency, queue)

    def _sink_metrics(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "ingestd_sink_breaker_state",
            "1 for the circuit breaker's current state",
            labels=["sink", "state"],
        )
        open_s = GaugeMetricFamily(
            "ingestd_sink_breaker_not_closed_seconds",
            "how long the breaker has been open or half-open (0 when closed)",
            labels=["sink"],
        )
        pending = GaugeMetricFamily(
            "ingestd_sink_spool_pending_readings", "readings waiting in the spool", labels=["sink"]
        )
        size = GaugeMetricFamily(
            "ingestd_sink_spool_bytes", "bytes of spool segments on disk", labels=["sink"]
        )
        open_for = self.reporter.breaker_open_s()
        for label, gauges in self.reporter.sink_gauges().items():
            current = str(gauges.get(BREAKER, CLOSED))
            for s in BREAKER_STATES:
                state.add_metric([label, s], 1.0 if s == current else 0.0)
            open_s.add_metric([label], open_for.get(label, 0.0))
            pending.add_metric([label], float(gauges.get(SPOOL_PENDING, 0)))
            size.add_metric([label], float(gauges.get(SPOOL_BYTES, 0)))
        yield from (state, open_s, pending, size)

    def _other_gauges(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "ingestd_component_gauge",
            "a number a component publishes about itself",
            labels=["component", "name"],
        )
        for label, gauges in self.reporter.state.gauges.items():
            for name, value in gauges.items():
                if name not in _CONSUMED and isinstance(value, int | float):
                    family.add_metric([label, name], float(value))
        yield family


def _counter_metrics(counters: Counters) -> Iterator[Metric]:
    for f in fields(counters):
        family = CounterMetricFamily(f"ingestd_{f.name}", _COUNTER_DOCS.get(f.name, f.name))
        family.add_metric([], getattr(counters, f.name))
        yield family
    in_flight = GaugeMetricFamily(
        "ingestd_in_flight_readings", "readings read but not yet written, filtered or spooled"
    )
    in_flight.add_metric([], counters.in_flight)
    yield in_flight


def build_registry(reporter: HealthReporter) -> CollectorRegistry:
    """A private registry (not the global one) holding ingestd's and the process's metrics."""
    registry = CollectorRegistry()
    registry.register(IngestdCollector(reporter))
    ProcessCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
