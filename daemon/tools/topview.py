"""What `ingestd top` shows of a `Frame`: a rich dashboard for a terminal, plain lines otherwise.

Both views show the same facts in the same order, so what an operator reads over SSH is what a
script or a log gets when stdout is not a terminal: totals and rates of the counters, the rate
history, queues and event-loop lag, then one row per stage, source and sink, then the taps.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from daemon.tools.rates import TRACKED, Frame, sparkline

COUNTERS = ("read", "written", "filtered", "rejected", "spooled")
BREAKER_STYLE = {"closed": "green", "open": "bold red", "half_open": "yellow"}
SPARK_WIDTH = 40


# -- formatting shared by both views ---------------------------------------------------------
def count(n: float) -> str:
    return f"{n:,.0f}"


def per_s(rate: float) -> str:
    return f"{rate:,.0f}/s"


def ms(value: float) -> str:
    return f"{value:.2f}ms" if value < 100 else f"{value:.0f}ms"


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def gauges_text(gauges: dict[str, Any]) -> str:
    """A component's other gauges as `key=value`, booleans as yes/no."""
    return " ".join(f"{k}={_value(v)}" for k, v in gauges.items())


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _lag(status: dict[str, Any]) -> str:
    lag = status.get("loop_lag_ms") or {}
    return (
        f"p50 {ms(lag.get('p50', 0.0))} p99 {ms(lag.get('p99', 0.0))} max {ms(lag.get('max', 0.0))}"
    )


def _queues(status: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in status.get("queues", {}).items()) or "-"


def _health(status: dict[str, Any]) -> str:
    health = status.get("health", {})
    if health.get("status") == "ok":
        return "ok"
    return "UNHEALTHY: " + "; ".join(health.get("reasons", []))


# -- plain lines -----------------------------------------------------------------------------
def plain_lines(frame: Frame) -> list[str]:
    """One block per poll: a summary line, then one indented line per stage, source, sink, tap."""
    st = frame.status
    totals = st["totals"]
    at = dt.datetime.fromtimestamp(float(st.get("time", 0))).strftime("%H:%M:%S")
    summary = " ".join(
        f"{name} {count(totals.get(name, 0))} ({per_s(frame.rates[name])})" for name in COUNTERS
    )
    lines = [
        f"{at} {summary} in_flight {count(totals.get('in_flight', 0))}"
        f" | queue {_queues(st)} | loop lag {_lag(st)} | health {_health(st)}"
    ]
    for s in st.get("stages", []):
        rate_in, rate_out = frame.stage_rates.get(s["label"], (0.0, 0.0))
        lines.append(
            f"  stage {s['label']} {s.get('type') or '?'} in {per_s(rate_in)} out {per_s(rate_out)}"
            f" p50 {ms(s['p50_ms'])} p99 {ms(s['p99_ms'])}"
        )
    for src in st.get("sources", []):
        lines.append(
            f"  source {src['label']} {src.get('type') or '?'} {gauges_text(src['gauges'])}"
        )
    for k in st.get("sinks", []):
        opened = f" for {duration(k['open_for_s'])}" if k["breaker"] != "closed" else ""
        lines.append(
            f"  sink {k['label']} {k.get('type') or '?'} breaker {k['breaker']}{opened}"
            f" spool {count(k['spool_pending'])} readings {size(k['spool_bytes'])}"
            f" write p50 {ms(k['write_p50_ms'])} p99 {ms(k['write_p99_ms'])}"
        )
    for tap in st.get("taps", {}).get("attached", []):
        lines.append(
            f"  tap {tap['at']} kind {tap['kind'] or 'all'} sample {tap['sample']:g}"
            f" sent {count(tap['sent'])} dropped {count(tap['dropped'])}"
        )
    return lines


# -- the dashboard ---------------------------------------------------------------------------
def dashboard(frame: Frame, url: str, problem: str | None = None) -> RenderableType:
    """The whole screen; `problem`: why the numbers shown are not fresh (the daemon is gone)."""
    st = frame.status
    parts: list[RenderableType] = [_title(st, url, problem), _counters(frame)]
    parts.append(_sparks(frame))
    parts.append(
        Text.assemble(
            ("queues ", "bold"),
            _queues(st),
            ("   loop lag ", "bold"),
            _lag(st),
            ("   e2e p99 ", "bold"),
            ms(st.get("e2e_latency_ms", {}).get("p99", 0.0)),
            ("   rss ", "bold"),
            f"{st.get('rss_mb', 0)} MB",
        )
    )
    parts.append(_stages(frame))
    if st.get("sources"):
        parts.append(_sources(st))
    parts.append(_sinks(st))
    taps = st.get("taps", {})
    if taps.get("attached") or taps.get("dropped"):
        parts.append(_taps(taps))
    return Group(*parts)


def _title(st: dict[str, Any], url: str, problem: str | None) -> Text:
    title = Text.assemble(
        ("ingestd top ", "bold"), url, f"   up {duration(st.get('uptime_s', 0))}   health "
    )
    health = _health(st)
    title.append(health, style="green" if health == "ok" else "bold red")
    title.append("   (q quits)", style="dim")
    if problem:
        title.append(f"\n{problem}", style="bold red reverse")
    return title


def _table(title: str, *columns: str, names: int = 2) -> Table:
    """A titled table whose first `names` columns are left-aligned names, the rest numbers."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i < names else "right", no_wrap=i < names)
    return table


def _counters(frame: Frame) -> Table:
    totals = frame.status["totals"]
    table = _table("readings", "counter", "total", "per second", names=1)
    for name in COUNTERS:
        style = "red" if name in ("rejected", "spooled") and frame.rates[name] > 0 else None
        table.add_row(name, count(totals.get(name, 0)), per_s(frame.rates[name]), style=style)
    table.add_row("in flight", count(totals.get("in_flight", 0)), "")
    return table


def _sparks(frame: Frame) -> Text:
    text = Text()
    for i, name in enumerate(TRACKED):
        values = frame.history.get(name, [])
        text.append(f"{name + '/s':<10}", style="bold")
        text.append(sparkline(values, SPARK_WIDTH).ljust(SPARK_WIDTH), style="cyan")
        text.append(f"  now {per_s(values[-1] if values else 0.0)}")
        text.append(f"  max {per_s(max(values, default=0.0))}", style="dim")
        if i < len(TRACKED) - 1:
            text.append("\n")
    return text


def _stages(frame: Frame) -> Table:
    table = _table("stages", "stage", "type", "in/s", "out/s", "p50", "p99", "in", "out")
    for s in frame.status.get("stages", []):
        rate_in, rate_out = frame.stage_rates.get(s["label"], (0.0, 0.0))
        table.add_row(
            s["label"],
            s.get("type") or "?",
            per_s(rate_in),
            per_s(rate_out),
            ms(s["p50_ms"]),
            ms(s["p99_ms"]),
            count(s["in"]),
            count(s["out"]),
        )
    return table


def _sources(st: dict[str, Any]) -> Table:
    table = _table("sources", "source", "type", "state", names=3)
    for src in st["sources"]:
        gauges = src["gauges"]
        state = Text()
        if "connected" in gauges:
            up = bool(gauges["connected"])
            state.append(
                "connected " if up else "DISCONNECTED ", style="green" if up else "bold red"
            )
        if gauges.get("sensors_down"):
            state.append(f"sensors down {gauges['sensors_down']} ", style="yellow")
        state.append(gauges_text({k: v for k, v in gauges.items() if k != "connected"}), "dim")
        table.add_row(src["label"], src.get("type") or "?", state)
    return table


def _sinks(st: dict[str, Any]) -> Table:
    table = _table(
        "sinks", "sink", "type", "breaker", "spool", "spool size", "write p50", "write p99", names=3
    )
    for k in st.get("sinks", []):
        breaker = Text(k["breaker"], style=BREAKER_STYLE.get(k["breaker"], "bold red"))
        if k["breaker"] != "closed":
            breaker.append(f" {duration(k['open_for_s'])}")
        table.add_row(
            k["label"],
            k.get("type") or "?",
            breaker,
            count(k["spool_pending"]),
            size(k["spool_bytes"]),
            ms(k["write_p50_ms"]),
            ms(k["write_p99_ms"]),
        )
    return table


def _taps(taps: dict[str, Any]) -> Table:
    table = _table(
        f"taps (all: {count(taps.get('sent', 0))} sent, {count(taps.get('dropped', 0))} dropped)",
        "at",
        "kind",
        "sample",
        "sent",
        "dropped",
    )
    for tap in taps.get("attached", []):
        table.add_row(
            tap["at"],
            tap["kind"] or "all",
            f"{tap['sample']:g}",
            count(tap["sent"]),
            count(tap["dropped"]),
        )
    return table
