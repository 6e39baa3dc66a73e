"""`python -m benchmarks.plots [FILE ...] [--out DIR]`: the benchmark charts, from stored results.

The results are the JSON lines `python -m benchmarks` and `python -m benchmarks.soak` print,
kept in `benchmarks/results/` (their names start with their date). Each chart is drawn from the
newest file that holds what it shows (or from the FILEs given, the first that does), never from
several files at once: numbers measured on different days, trees or machine loads side by side
would compare what cannot be compared. Files named `...before...` (an older tree's numbers, kept
for a before/after) are used only when given, and a `--quick` run's never (its tiny workload is
the harness's test, not a measurement). No benchmark is re-run.

    throughput.png    throughput per scenario against its target and the per-record baselines
    soak_rss.png      RSS over the 30-minute soak, with its faults and its growth limit
    latency_cdf.png   end-to-end latency distribution at 10,000 sensors
    backpressure.png  sources' read rate against a paced sink's write rate over a run

matplotlib is optional (`pip install -e '.[plots]'`): without it this says so and exits 1, and
the benchmarks themselves (`python -m benchmarks [--plots DIR]`) run as before.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks import report

RESULTS = Path(__file__).resolve().parent / "results"
INSTALL = (
    "matplotlib is not installed: pip install -e '.[plots]' (or .venv/bin/pip install matplotlib)"
)
THROUGHPUT = ("default_chain", "with_features", "baseline_orjson", "baseline_json")
Lines = list[dict[str, Any]]
Chart = Callable[[Lines, Path, str], Path | None]


def read(path: Path) -> Lines:
    lines = []
    for text in path.read_text().splitlines():
        try:
            obj = json.loads(text)
        except ValueError:
            continue  # a stray line (a note, a traceback) is not a result
        if isinstance(obj, dict):
            lines.append(obj)
    return lines


def _note(lines: Lines, source: str) -> str:
    machine = next((o["machine"] for o in lines if "machine" in o), None)
    if not machine:
        return source
    load = machine.get("loadavg") or [0.0]
    end = next((o["load_at_end"] for o in lines if "load_at_end" in o), None)
    return (
        f"{source}  ·  {machine.get('cpu') or 'cpu?'}, {machine.get('cores')} cores, "
        f"Python {machine.get('python')}, load average {load[0]:.2f} at start"
        + (f", {end[0]:.2f} at end" if end else "")
    )


def _runs(lines: Lines, scenario: str) -> Lines:
    return [o for o in lines if o.get("scenario") == scenario and "error" not in o]


def _target(scenario: str, key: str) -> float | None:
    for metric in report.HEADLINES.get(scenario, []):
        if metric.key == key and metric.op:
            return metric.target
    return None


def throughput(lines: Lines, out: Path, note: str) -> Path | None:
    from benchmarks import charts  # noqa: PLC0415 - matplotlib only when drawing

    bars = []
    ratios = [o for o in lines if "ratio" in o]
    for name in THROUGHPUT:
        rates = [float(r["rate"]) for r in _runs(lines, name) if r.get("rate")]
        if not rates:
            continue
        notes = [
            f"{r['ratio'].split('/')[0]} is {r['value']:.3g}x this"
            + (f" (target {r['target']}x)" if r.get("target") else "")
            for r in ratios
            if r["ratio"].endswith("/" + name) and r["ratio"].startswith("default_chain/")
        ]
        bars.append(
            charts.Bar(name, rates, _target(name, "rate"), name.startswith("baseline"), notes)
        )
    if not bars:
        return None
    runs = max(len(b.rates) for b in bars)
    title = f"Throughput: 1,000 sensors flat out to completion (median of {runs} runs, min-max)"
    return charts.throughput(bars, out / "throughput.png", title=title, note=note)


def soak_rss(lines: Lines, out: Path, note: str) -> Path | None:
    from benchmarks import charts  # noqa: PLC0415 - matplotlib only when drawing

    samples = [(float(o["at_s"]), float(o["rss_mb"])) for o in lines if o.get("rss_mb") is not None]
    if len(samples) < 2:
        return None
    faults = [(float(o["at_s"]), str(o["fault"])) for o in lines if "fault" in o]
    summary = next((o for o in lines if o.get("summary") == "soak"), {})
    warm = float(summary.get("first_after_warmup", {}).get("at_s", 60.0))
    grew = summary.get("growth_pct", {}).get("rss_mb")
    minutes = samples[-1][0] / 60.0
    title = f"RSS over a {minutes:.0f}-minute soak at 100,000 readings/s, a fault a minute"
    if grew is not None:
        title += f" (grew {grew:g} %)"
    return charts.rss_over_time(
        samples, out / "soak_rss.png", faults=faults, warm_s=warm, title=title, note=note
    )


def latency(lines: Lines, out: Path, note: str) -> Path | None:
    from benchmarks import charts  # noqa: PLC0415 - matplotlib only when drawing

    names = {
        "concurrency": "default: a tick every 0.2 s, 2 readings each",
        "concurrency_every_tick": "a tick every 0.1 s (every reading)",
        "concurrency_coalesced": "a tick every 1 s, 10 readings each",
    }
    curves = []
    sensors = None
    for scenario, label in names.items():
        runs = [r for r in _runs(lines, scenario) if r.get("e2e_cdf_ms")]
        if runs:
            run = sorted(runs, key=lambda r: r.get("e2e_p99_ms") or 0.0)[len(runs) // 2]
            curves.append(charts.Curve(label, run["e2e_cdf_ms"], run.get("e2e_p99_ms")))
            sensors = run.get("sensors", sensors)
    if not curves:
        return None
    title = f"End-to-end latency at {sensors or 0:,} sensors at 10 Hz, whole run"
    target = _target("concurrency", "e2e_p99_ms") or 250.0
    return charts.latency_cdf(
        curves, out / "latency_cdf.png", target_p99_ms=target, title=title, note=note
    )


def backpressure(lines: Lines, out: Path, note: str) -> Path | None:
    from benchmarks import charts  # noqa: PLC0415 - matplotlib only when drawing

    runs = [r for r in _runs(lines, "backpressure") if r.get("rate_series")]
    if not runs:
        return None
    run = runs[-1]
    title = (
        f"Backpressure: sources at {run['nominal_per_s']:,}/s into a sink paced to "
        f"{run['sink_max_per_s']:,.0f}/s (lost: {run.get('lost')})"
    )
    return charts.backpressure(
        run["rate_series"],
        out / "backpressure.png",
        nominal_per_s=float(run["nominal_per_s"]),
        sink_max_per_s=float(run["sink_max_per_s"]),
        stop_at_s=run.get("stop_at_s"),
        title=title,
        note=note,
    )


CHARTS: dict[str, Chart] = {
    "throughput": throughput,
    "soak_rss": soak_rss,
    "latency_cdf": latency,
    "backpressure": backpressure,
}


def render(sources: Sequence[tuple[str, Lines]], out: Path) -> dict[str, tuple[Path, str]]:
    """Each chart from the first source that holds its data: name -> (png, source)."""
    made: dict[str, tuple[Path, str]] = {}
    for name, chart in CHARTS.items():
        for source, lines in sources:
            path = chart(lines, out, _note(lines, source))
            if path is not None:
                made[name] = (path, source)
                break
    return made


def stored(files: Sequence[Path]) -> list[tuple[str, Lines]]:
    """The given files in order, or else the stored results newest first, without those named
    `...before...` (an older tree's numbers, kept for a comparison); `--quick` runs left out."""
    paths = list(files) or sorted(
        (p for p in RESULTS.glob("*.jsonl") if "before" not in p.name),
        key=_written,
        reverse=True,
    )
    out = []
    for path in paths:
        lines = read(path)
        if not any(o.get("quick") for o in lines):
            out.append((_display(path), lines))
    return out


def _written(path: Path) -> tuple[str, float]:
    """When a result was made: the date its name starts with, then (one day's files) its
    modification time."""
    return path.name[:10], path.stat().st_mtime


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(RESULTS.parents[1]))
    except ValueError:
        return str(path)


def has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401, PLC0415 - the optional dependency, probed
    except ImportError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plots", description=__doc__)
    parser.add_argument("files", nargs="*", type=Path, help="result files (default: stored)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the PNGs go")
    args = parser.parse_args(argv)
    if not has_matplotlib():
        print(INSTALL, file=sys.stderr)
        return 1
    made = render(stored(args.files), args.out)
    for path, source in made.values():
        print(f"{path}  <-  {source}")
    missing = sorted(set(CHARTS) - set(made))
    if missing:
        print(f"no stored result holds the data of: {', '.join(missing)}", file=sys.stderr)
    return 0 if made else 1


if __name__ == "__main__":
    sys.exit(main())
