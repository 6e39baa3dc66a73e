"""What every component gets besides its config: the shared, explicit run state.

One `RunState` lives for the whole process (counters, dead-letter file, state carried across
reloads, the stop/force flags); each component gets a `ComponentContext` naming it. Nothing here
needs a running event loop to build, so tests can construct components freely.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from daemon.counters import Counters
from daemon.deadletter import DeadLetter

if TYPE_CHECKING:
    from daemon.observability.latency import LatencyHistogram


def _latency_histogram() -> LatencyHistogram:
    # Imported on use: daemon.observability imports this module (for its health report).
    from daemon.observability.latency import LatencyHistogram  # noqa: PLC0415 - import cycle

    return LatencyHistogram()


@dataclass
class RunState:
    counters: Counters
    dead_letter: DeadLetter
    # State that outlives a pipeline rebuild on reload, keyed by component label (e.g. a
    # simulated sensor's next seq, so `(sensor_id, seq)` never repeats within a run).
    carry: dict[str, Any] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)  # sources: stop reading
    force: asyncio.Event = field(default_factory=asyncio.Event)  # everyone: spool and exit now
    # Per-component gauges that the health report reads (queue depths, breaker states, ...).
    gauges: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Ages of readings when every sink acknowledged them (the end-to-end latency), whole run.
    latency: LatencyHistogram = field(default_factory=_latency_histogram)

    @classmethod
    def fresh(cls, dead_letter_path: str) -> RunState:
        return cls(counters=Counters(), dead_letter=DeadLetter(dead_letter_path))

    def reset_flags(self) -> None:
        """New flags for a rebuilt pipeline (after a reload drained the old one)."""
        self.stop = asyncio.Event()
        self.force = asyncio.Event()


@dataclass
class ComponentContext:
    """A component's view of the run: its label (`stages[2]`) and the shared state."""

    label: str
    state: RunState

    @property
    def counters(self) -> Counters:
        return self.state.counters

    @property
    def log(self) -> Any:
        return structlog.get_logger(self.label)

    @property
    def carry(self) -> dict[str, Any]:
        mine: dict[str, Any] = self.state.carry.setdefault(self.label, {})
        return mine

    def gauge(self) -> dict[str, Any]:
        gauges: dict[str, Any] = self.state.gauges.setdefault(self.label, {})
        return gauges

    @classmethod
    def for_test(
        cls, label: str = "test", dead_letter_path: str = "dead-letter.jsonl"
    ) -> ComponentContext:
        return cls(label=label, state=RunState.fresh(dead_letter_path))
