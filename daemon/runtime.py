"""What every component gets besides its config: the shared, explicit run state.

One `RunState` lives for the whole process (counters, dead-letter file, state carried across
reloads, the stop/force flags); each component gets a `ComponentContext` naming it. Nothing here
needs a running event loop to build, so tests can construct components freely.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import structlog

from daemon.counters import Counters
from daemon.deadletter import DeadLetter


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
