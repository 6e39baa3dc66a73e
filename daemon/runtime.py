"""What a component gets besides its config: a narrow `ComponentContext`.

Two lifetimes meet here. One `RunState` lives for the whole process (counters, the dead-letter
file, state carried across reloads, gauges, the latency histogram); the supervisor owns it. Each
pipeline generation owns a `Lifetime`: its stop and force tokens, set by the supervisor and by
the generation's own shutdown deadlines. A component sees neither whole: its context exposes
what it may touch (its logger, its gauges, its carried state, the stop/force tokens, counting
and dead-lettering its own rejects), so a plugin cannot reach into the run.

Nothing here needs a running event loop to build, so tests and tools construct components freely.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from daemon.counters import Counters
from daemon.deadletter import DeadLetter, DeadLetterEntry
from daemon.registry import Kind

if TYPE_CHECKING:
    from daemon.observability.latency import LatencyHistogram
    from daemon.observability.tap import TapBoard
    from daemon.state import StateStore


def _latency_histogram() -> LatencyHistogram:
    # Imported on use: daemon.observability imports this module (for its health report).
    from daemon.observability.latency import LatencyHistogram  # noqa: PLC0415 - import cycle

    return LatencyHistogram()


def _tap_board() -> TapBoard:
    # Imported on use, like the histogram: the board encodes through daemon.wire.
    from daemon.observability.tap import TapBoard  # noqa: PLC0415 - import cycle

    return TapBoard()


def _state_store(directory: str | None = None) -> StateStore:
    # Imported on use, like the histogram: the store logs through daemon.observability.
    from daemon.state import StateStore  # noqa: PLC0415 - import cycle

    return StateStore(directory)


@dataclass
class RunState:
    """The process's state, which outlives every pipeline generation."""

    counters: Counters
    dead_letter: DeadLetter
    # State that outlives a pipeline rebuild on reload, keyed by component label (e.g. a
    # simulated sensor's next seq, so `(sensor_id, seq)` never repeats within a run).
    carry: dict[str, Any] = field(default_factory=dict)
    # Per-component gauges that the health report reads (queue depths, breaker states, ...).
    gauges: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Ages of readings when every sink acknowledged them (the end-to-end latency), whole run.
    latency: LatencyHistogram = field(default_factory=_latency_histogram)
    # What survives a restart (next seqs, file positions), saved once durably taken.
    store: StateStore = field(default_factory=_state_store)
    # The data path's hook points for `ingestd tap`; a tap outlives a reload that keeps its label.
    taps: TapBoard = field(default_factory=_tap_board)

    @classmethod
    def fresh(cls, dead_letter_path: str, state_dir: str | None = None) -> RunState:
        return cls(
            counters=Counters(),
            dead_letter=DeadLetter(dead_letter_path),
            store=_state_store(state_dir),
        )


class Token:
    """A one-way flag that a component may watch (`is_set`, `wait`) but not set."""

    __slots__ = ("_event",)

    def __init__(self, event: asyncio.Event) -> None:
        self._event = event

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()


@dataclass
class Lifetime:
    """One generation's tokens. `stop`: sources stop reading, everything read drains through.
    `force`: nothing more is attempted; in-flight data is spooled and the generation ends now."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    force: asyncio.Event = field(default_factory=asyncio.Event)


class ComponentContext:
    """A component's view of the run, named by its label (`stages[2]`)."""

    def __init__(
        self,
        label: str,
        kind: Kind,
        state: RunState,
        lifetime: Lifetime,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.kind = kind
        self.clock = clock  # the monotonic clock a component paces and times by (tests set it)
        self.log: Any = structlog.get_logger(label)
        self.stop = Token(lifetime.stop)  # sources: stop reading, let what was read drain
        self.force = Token(lifetime.force)  # everyone: give up now, in-flight data is spooled
        self._state = state

    @classmethod
    def standalone(
        cls, label: str = "standalone", kind: Kind = "stage", dead_letter: str = "/dev/null"
    ) -> ComponentContext:
        """A context outside a daemon run: a benchmark, a tool or a test driving one component."""
        return cls(label, kind, RunState.fresh(dead_letter), Lifetime())

    @property
    def carry(self) -> dict[str, Any]:
        """State of this component that survives a pipeline rebuild on reload."""
        mine: dict[str, Any] = self._state.carry.setdefault(self.label, {})
        return mine

    def restored(self, key: str) -> Any | None:
        """What was saved under `key` (an identity: `simulated:S`, `file:/path`) by an earlier
        run or generation, or None."""
        return self._state.store.load(key)

    def persist(self, key: str, value: Any) -> None:
        """Save `value` under `key` for the next run. Call it only for what was durably taken
        (from `Source.taken`), never ahead of delivery; written within `state.FLUSH_S`."""
        self._state.store.save(key, value)

    def gauge(self) -> dict[str, Any]:
        """This component's gauges, read by the health report, `/metrics` and `STATUS=`."""
        gauges: dict[str, Any] = self._state.gauges.setdefault(self.label, {})
        return gauges

    def count_filtered(self, readings: int) -> None:
        """Readings a stage dropped on purpose."""
        self._state.counters.filtered += readings

    def count_read_failures(self, reads: int = 1) -> None:
        """Failed reads that produced no reading at all (not in `read`)."""
        self._state.counters.read_failures += reads

    def count_derived(self, records: int) -> None:
        """Derived records (features, alerts) a stage emitted; they are not readings."""
        self._state.counters.features += records

    def count_alerts(self, records: int) -> None:
        """Alert records (firing, resolved) a stage emitted; derived records, not readings."""
        self._state.counters.alerts += records

    def reject(self, rejects: Iterable[tuple[str, Any, dict[str, Any] | None]]) -> int:
        """Dead-letter `(reason, raw, extra)` items with this component's label, written (and
        fsynced) together, and count them `rejected`. A source's rejects are bad input that was
        read, so they count `read` too; a stage's were already read. Returns how many."""
        entries = [
            DeadLetterEntry(reason, self.label, raw, extra or {}) for reason, raw, extra in rejects
        ]
        if not entries:
            return 0
        self._state.dead_letter.write_all(entries)
        counters = self._state.counters
        if self.kind == "source":
            counters.read += len(entries)
        counters.rejected += len(entries)
        return len(entries)

    def quarantine(self, reason: str, raw: Any, extra: dict[str, Any] | None = None) -> None:
        """Keep something that is not a reading (a torn line found after a crash, a corrupt
        state file) in the dead-letter file with the reason, without counting it."""
        self._state.dead_letter.write_all([DeadLetterEntry(reason, self.label, raw, extra or {})])
