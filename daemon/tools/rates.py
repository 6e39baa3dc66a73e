"""Rates from successive `/status` polls, their short history, and the sparkline that draws it.

Why the client computes its own rates: the daemon's `rates` cover a trailing window shared by
every client; `ingestd top` wants exactly the interval between the two documents it shows, and
takes it from the daemon's own clock (`monotonic_s`), so a slow poll does not inflate a rate.
The first document has no predecessor: its rates are the daemon's.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from daemon.observability.status import TOTALS

HISTORY = 60  # polls kept for the sparklines (a minute at the default interval)
SPARKS = "▁▂▃▄▅▆▇█"
TRACKED = ("read", "written")  # the rates drawn as history


@dataclass
class Frame:
    """One status document with the rates since the previous one."""

    status: dict[str, Any]
    rates: dict[str, float]  # per counter of `TOTALS`
    stage_rates: dict[str, tuple[float, float]]  # per stage label: (in, out) per second
    history: dict[str, list[float]] = field(default_factory=dict)  # per `TRACKED` counter
    interval_s: float | None = None  # None: the first poll (the daemon's own rates)


class RateTracker:
    def __init__(self, history: int = HISTORY) -> None:
        self._previous: dict[str, Any] | None = None
        self._history = {name: deque[float](maxlen=history) for name in TRACKED}

    def update(self, status: dict[str, Any]) -> Frame:
        previous, self._previous = self._previous, status
        elapsed = None
        if previous is not None:
            elapsed = float(status["monotonic_s"]) - float(previous["monotonic_s"])
        if previous is None or elapsed is None or elapsed <= 0:
            frame = Frame(
                status,
                {name: float(status.get("rates", {}).get(name, 0.0)) for name in TOTALS},
                {
                    s["label"]: (float(s["in_per_s"]), float(s["out_per_s"]))
                    for s in _stages(status)
                },
            )
        else:
            totals, before = status["totals"], previous["totals"]
            old_stages = {s["label"]: s for s in _stages(previous)}
            frame = Frame(
                status,
                {name: _rate(totals.get(name, 0), before.get(name, 0), elapsed) for name in TOTALS},
                {
                    s["label"]: (
                        _rate(s["in"], old_stages.get(s["label"], {}).get("in", 0), elapsed),
                        _rate(s["out"], old_stages.get(s["label"], {}).get("out", 0), elapsed),
                    )
                    for s in _stages(status)
                },
                interval_s=elapsed,
            )
        for name, values in self._history.items():
            values.append(frame.rates[name])
            frame.history[name] = list(values)
        return frame


def sparkline(values: list[float], width: int = HISTORY) -> str:
    """The last `width` values as block characters scaled to their maximum (all equal and
    zero: the lowest block, so an idle stream still draws a line)."""
    shown = values[-width:]
    top = max(shown, default=0.0)
    if top <= 0:
        return SPARKS[0] * len(shown)
    last = len(SPARKS) - 1
    return "".join(SPARKS[min(last, max(0, round(v / top * last)))] for v in shown)


def _rate(now: int, before: int, elapsed: float) -> float:
    if now < before:  # the daemon restarted, or a reload rebuilt the stage's totals
        before = 0
    return (now - before) / elapsed


def _stages(status: dict[str, Any]) -> list[dict[str, Any]]:
    stages: list[dict[str, Any]] = status.get("stages", [])
    return stages
