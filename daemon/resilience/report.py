"""What the spool found (log lines and counter increments), delivered from the event loop.

Why not log and count on the spot: the guarded sink runs the spool's disk work in a thread, and
two spools (two sinks) may do so at once. A `+=` on a shared counter from two threads can lose an
increment, and the log writer belongs to the event loop. So a spool run in a thread defers: it
records what it found, and the guarded sink calls `deliver()` back on the loop after each call.
Used directly (tests, tools), a spool reports at once.
"""

from __future__ import annotations

from typing import Any, Literal

from daemon.counters import Counters

Level = Literal["info", "warning", "error"]
CounterName = Literal["spool_corrupt", "spool_lost"]


class Reports:
    def __init__(self, log: Any, counters: Counters, *, deferred: bool = False) -> None:
        self._log = log
        self._counters = counters
        self.deferred = deferred
        self._held: list[tuple[Level, str, dict[str, Any]]] = []
        self._counts: list[tuple[CounterName, int]] = []

    def info(self, event: str, **fields: Any) -> None:
        self._emit("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit("error", event, fields)

    def count(self, counter: CounterName, n: int = 1) -> None:
        if self.deferred:
            self._counts.append((counter, n))
        else:
            setattr(self._counters, counter, getattr(self._counters, counter) + n)

    def deliver(self) -> None:
        """Log and count what was held (call from the event loop)."""
        held, self._held = self._held, []
        counts, self._counts = self._counts, []
        for counter, n in counts:
            setattr(self._counters, counter, getattr(self._counters, counter) + n)
        for level, event, fields in held:
            getattr(self._log, level)(event, **fields)

    def _emit(self, level: Level, event: str, fields: dict[str, Any]) -> None:
        if self.deferred:
            self._held.append((level, event, fields))
        else:
            getattr(self._log, level)(event, **fields)
