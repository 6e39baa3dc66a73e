"""The benchmark charts, drawn with matplotlib from plain numbers (no file reading here).

Why these four: they answer at a glance what RESULTS.md's tables answer in digits — is the
pipeline fast enough against its targets and the per-record baselines, does memory stay flat
over a long run with faults, how old is a reading when it is delivered at 10,000 sensors, and
does a slow sink slow the sources (and nothing else). Each function takes the series it draws,
so a chart can be made from stored results (`benchmarks.plots`), from a run just made, or from
a test's fixture.

matplotlib is an optional dependency (`pip install -e '.[plots]'`); only this module imports
it, with the non-interactive Agg canvas and no pyplot state, so charts render over SSH and in
tests alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator

DPI = 110
_SIZE = (9.0, 4.8)
_GOOD, _BASE, _TARGET, _SINK = "#2b6cb0", "#a0aec0", "#c53030", "#dd6b20"
_FAULTS = {
    "reload": "#2f855a",
    "delete_data": "#c53030",
    "kill_child": "#6b46c1",
    "stall": "#b7791f",
}


def _per_s(value: float, _: object = None) -> str:
    """Readable counts to 3 significant digits: 950, 12.3k, 2.14M."""
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def _figure(title: str, note: str) -> tuple[Figure, Any]:
    """A figure with one axes: the title, and under it in small grey what was measured where."""
    fig = Figure(figsize=_SIZE, dpi=DPI, layout="constrained")
    ax = fig.subplots()
    fig.suptitle(title, x=0.01, ha="left", fontsize=11.5, fontweight="bold")
    if note:
        ax.set_title(note, loc="left", fontsize=7.5, color="#4a5568")
    ax.grid(True, which="major", color="#e2e8f0", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def _save(fig: Figure, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI)
    return out


@dataclass(frozen=True)
class Bar:
    """One scenario's throughput: every run's readings/s, and its target if it has one."""

    name: str
    rates: Sequence[float]
    target: float | None = None
    baseline: bool = False  # a per-record comparison pipeline, not ingestd
    notes: list[str] = field(default_factory=list)  # e.g. "46x baseline_json (target >= 5x)"


def throughput(bars: Sequence[Bar], out: Path, *, title: str, note: str = "") -> Path:
    """Horizontal bars on a log axis (the baselines are ~50x slower): the median, the runs as
    dots, min-max as a whisker, each target as a red tick across its bar."""
    fig, ax = _figure(title, note)
    ys = list(range(len(bars)))[::-1]
    top = max(max(b.rates) for b in bars)
    for y, bar in zip(ys, bars, strict=True):
        rates = sorted(bar.rates)
        median = _median(rates)
        ax.barh(y, median, height=0.6, color=_BASE if bar.baseline else _GOOD)
        ax.plot(rates, [y] * len(rates), "o", ms=3.5, color="#1a202c", alpha=0.55, zorder=3)
        ax.plot([rates[0], rates[-1]], [y, y], color="#1a202c", linewidth=1.0, zorder=3)
        label = f"{_per_s(median)}/s"
        if bar.notes:
            label += "   " + "; ".join(bar.notes)
        ax.text(max(rates) * 1.15, y, label, va="center", fontsize=8.5)
        if bar.target is not None:
            ax.plot([bar.target, bar.target], [y - 0.42, y + 0.42], color=_TARGET, linewidth=2.2)
            ax.text(
                bar.target,
                y + 0.45,
                f"target {_per_s(bar.target)}/s",
                color=_TARGET,
                fontsize=7.5,
                ha="center",
                va="bottom",
            )
    ax.set_yticks(ys, [b.name for b in bars])
    ax.set_xscale("log")
    ax.set_xlim(min(min(b.rates) for b in bars) / 2, top * 8)  # room for the labels
    ax.xaxis.set_major_formatter(FuncFormatter(_per_s))
    ax.set_xlabel("readings per second (log scale)")
    ax.set_ylim(-0.7, len(bars) - 0.2)
    return _save(fig, out)


def rss_over_time(
    samples: Sequence[tuple[float, float]],
    out: Path,
    *,
    faults: Sequence[tuple[float, str]] = (),
    warm_s: float = 60.0,
    growth_limit_pct: float = 10.0,
    title: str,
    note: str = "",
) -> Path:
    """RSS (MB) against time (minutes), each injected fault a thin line in its kind's colour,
    and the limit the soak checks: no more than `growth_limit_pct` above the RSS at `warm_s`."""
    fig, ax = _figure(title, note)
    minutes = [t / 60.0 for t, _ in samples]
    rss = [r for _, r in samples]
    seen: set[str] = set()
    for at, kind in faults:
        label = None if kind in seen else f"fault: {kind}"
        seen.add(kind)
        ax.axvline(
            at / 60.0, color=_FAULTS.get(kind, "#718096"), linewidth=0.8, alpha=0.6, label=label
        )
    ax.plot(minutes, rss, color=_GOOD, linewidth=1.8, label="RSS of the daemon's process tree")
    warm = next((r for t, r in samples if t >= warm_s), rss[0])
    limit = warm * (1 + growth_limit_pct / 100.0)
    limit_label = f"limit: +{growth_limit_pct:g} % over minute {warm_s / 60:g} ({limit:.0f} MB)"
    ax.axhline(limit, color=_TARGET, linestyle="--", linewidth=1.4, label=limit_label)
    ax.set_xlabel("minutes")
    ax.set_ylabel("MB")
    ax.set_xlim(0, max(minutes))
    ax.set_ylim(0, max(*rss, limit) * 1.15)
    ax.legend(loc="lower right", fontsize=7.5, ncols=2, framealpha=0.9)
    return _save(fig, out)


@dataclass(frozen=True)
class Curve:
    """One run's end-to-end latency distribution: `[upper edge ms, share]` points."""

    name: str
    cdf: Sequence[Sequence[float]]
    p99_ms: float | None = None


def latency_cdf(
    curves: Sequence[Curve], out: Path, *, target_p99_ms: float, title: str, note: str = ""
) -> Path:
    """The share of readings delivered within x ms (log x), the p99 target as a cross-hair."""
    fig, ax = _figure(title, note)
    colours = [_GOOD, "#2f855a", _SINK, "#6b46c1"]  # the first curve is the one that matters
    for k, (curve, colour) in enumerate(zip(curves, colours, strict=False)):
        xs = [float(p[0]) for p in curve.cdf]
        ys = [float(p[1]) * 100.0 for p in curve.cdf]
        label = curve.name + (f" (p99 {curve.p99_ms:.0f} ms)" if curve.p99_ms else "")
        # the points are bucket edges (8 per doubling): the share between two is not known,
        # so they are joined by straight lines, not drawn as steps that would pretend it is
        width = 2.4 if k == 0 else 1.4
        ax.plot(xs, ys, color=colour, linewidth=width, label=label, marker=".", markersize=3)
    ax.axvline(
        target_p99_ms,
        color=_TARGET,
        linestyle="--",
        linewidth=1.3,
        label=f"target: p99 <= {target_p99_ms:g} ms",
    )
    ax.axhline(99.0, color=_TARGET, linestyle=":", linewidth=1.0)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("age of a reading when every sink acknowledged it, ms (log scale)")
    ax.set_ylabel("% of readings at most that old")
    ax.set_ylim(0, 101)
    ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
    return _save(fig, out)


def backpressure(
    series: Sequence[Sequence[float]],
    out: Path,
    *,
    nominal_per_s: float,
    sink_max_per_s: float,
    stop_at_s: float | None = None,
    title: str,
    note: str = "",
) -> Path:
    """Read and written per second over the run (log y) against what the sources would emit
    and what the sink is paced to; readings in flight (the bounded buffers) on the right."""
    fig, ax = _figure(title, note)
    t = [float(p[0]) for p in series]
    read = [max(float(p[1]), 1.0) for p in series]  # log axis: an idle interval sits at 1
    written = [max(float(p[2]), 1.0) for p in series]
    flight = [float(p[3]) for p in series]
    ax.axhline(
        nominal_per_s,
        color=_GOOD,
        linestyle=":",
        linewidth=1.2,
        label=f"sources' nominal rate ({_per_s(nominal_per_s)}/s)",
    )
    ax.axhline(
        sink_max_per_s,
        color=_SINK,
        linestyle=":",
        linewidth=1.2,
        label=f"sink paced to {_per_s(sink_max_per_s)}/s",
    )
    ax.plot(t, read, color=_GOOD, linewidth=1.8, label="read by the sources /s")
    ax.plot(t, written, color=_SINK, linewidth=1.8, label="written by the sink /s")
    if stop_at_s is not None:
        ax.axvline(stop_at_s, color="#4a5568", linewidth=1.0)
        ax.text(stop_at_s, nominal_per_s * 1.6, " SIGTERM: drain", fontsize=7.5, color="#4a5568")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(_per_s))
    ax.set_ylim(
        max(1.0, min(sink_max_per_s, *written[1:] or [sink_max_per_s]) / 10), nominal_per_s * 4
    )
    ax.set_xlabel("seconds since the daemon was ready")
    ax.set_ylabel("readings per second (log scale)")
    right = ax.twinx()
    right.fill_between(t, flight, color="#718096", alpha=0.15, step="post", label="in flight")
    right.set_ylabel("readings in flight (buffered)", color="#4a5568")
    right.yaxis.set_major_formatter(FuncFormatter(_per_s))
    right.set_ylim(0, max([*flight, 1.0]) * 1.25)
    right.spines["top"].set_visible(False)
    lines, labels = ax.get_legend_handles_labels()
    more, more_labels = right.get_legend_handles_labels()
    ax.legend(
        lines + more, labels + more_labels, loc="lower left", fontsize=7.5, ncols=2, framealpha=0.9
    )
    return _save(fig, out)


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
