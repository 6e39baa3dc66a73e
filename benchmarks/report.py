"""Summaries of the runs: median, min and max of each scenario's headline numbers, the ratios
measured in the same invocation, and whether each of issue 4's targets was met.

A target is printed next to its number, met or not; the harness never hides a miss.
"""

from __future__ import annotations

import operator
import os
import platform
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}


@dataclass(frozen=True)
class Metric:
    key: str
    op: str = ""  # "" : reported, no target
    target: float = 0.0

    def met(self, value: float | None) -> bool | None:
        if not self.op:
            return None
        return value is not None and _OPS[self.op](value, self.target)

    def describe(self) -> str:
        return f"{self.op} {self.target:,.10g}" if self.op else ""


RSS = Metric("peak_rss_mb", "<=", 150)
HEADLINES: dict[str, list[Metric]] = {
    "default_chain": [Metric("rate", ">=", 1_000_000), RSS, Metric("cpu_cores")],
    "with_features": [Metric("rate", ">=", 600_000), RSS, Metric("cpu_cores")],
    "baseline_json": [Metric("rate")],
    "baseline_orjson": [Metric("rate")],
    "memory_long": [
        RSS,
        Metric("rss_growth_pct", "<=", 10),
        Metric("rss_warm_mb"),
        Metric("rss_end_mb"),
        Metric("rate"),
    ],
    **{
        name: [
            Metric("loop_lag_p99_ms", "<=", 20),
            Metric("e2e_p99_ms", "<=", 250),
            Metric("e2e_p50_ms"),
            Metric("cpu_cores", "<", 1),
            Metric("read_per_s"),
            RSS,
        ]
        for name in ("concurrency", "concurrency_every_tick", "concurrency_coalesced")
    },
    "backpressure": [
        Metric("nominal_per_s"),
        Metric("read_per_s"),
        Metric("written_per_s"),
        Metric("in_flight_steady"),
        Metric("rss_warm_mb"),
        Metric("rss_end_mb"),
        RSS,
        Metric("lost", "==", 0),
        Metric("drain_s"),
    ],
    **{
        name: [
            Metric("rate"),
            Metric("cpu_cores"),
            Metric("readings_per_batch"),
            Metric("submissions_per_batch"),
            Metric("readings_per_submission"),
        ]
        for name in (
            "features_inline",
            "features_1_worker",
            "features_2_workers",
            "features_inline_no_encoder_child",
            "features_1_worker_no_encoder_child",
        )
    },
}

RATIOS: list[tuple[str, str, Metric]] = [
    ("default_chain", "baseline_json", Metric("rate", ">=", 5)),
    ("default_chain", "baseline_orjson", Metric("rate", ">=", 3)),
    ("with_features", "baseline_json", Metric("rate")),
    ("features_1_worker", "features_inline", Metric("rate")),
    ("features_2_workers", "features_inline", Metric("rate")),
    ("features_1_worker_no_encoder_child", "features_inline_no_encoder_child", Metric("rate")),
]


def _numbers(runs: list[dict[str, Any]], key: str) -> list[float]:
    return list(_by_round(runs, key).values())


def _by_round(runs: list[dict[str, Any]], key: str) -> dict[int, float]:
    """`key` of each run that has it, by its round (a failed run leaves its round out)."""
    return {
        int(r.get("run", i)): float(r[key])
        for i, r in enumerate(runs)
        if isinstance(r.get(key), int | float)
    }


def summaries(results: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    out = []
    for name, runs in results.items():
        for metric in HEADLINES.get(name, []):
            values = _numbers(runs, metric.key)
            median = statistics.median(values) if values else None
            out.append(
                {
                    "scenario": name,
                    "metric": metric.key,
                    "median": median,
                    "min": min(values, default=None),
                    "max": max(values, default=None),
                    "runs": len(values),
                    "target": metric.describe() or None,
                    "met": metric.met(median),
                }
            )
    return out


def ratios(results: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Ratio of medians; min/max over the runs paired by round (they ran side by side)."""
    out = []
    for num, den, metric in RATIOS:
        a, b = (_by_round(results.get(name, []), metric.key) for name in (num, den))
        if not a or not b:
            continue
        value = round(statistics.median(a.values()) / statistics.median(b.values()), 2)
        paired = [a[i] / b[i] for i in sorted(a.keys() & b.keys()) if b[i]]  # side by side
        out.append(
            {
                "ratio": f"{num}/{den}",
                "value": value,
                "min": round(min(paired), 2) if paired else None,
                "max": round(max(paired), 2) if paired else None,
                "target": metric.describe() or None,
                "met": metric.met(value),
            }
        )
    return out


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.3g}"


def table(summary: list[dict[str, Any]], ratio: list[dict[str, Any]], out: TextIO) -> None:
    """The human-readable summary (stderr, so stdout stays one JSON object per line)."""
    rows = [(s["scenario"], s["metric"], s["median"], s) for s in summary]
    rows += [("ratio", r["ratio"], r["value"], r) for r in ratio]
    name_w = max([24, *(len(name) + 2 for name, *_ in rows)])
    metric_w = max([24, *(len(metric) + 2 for _, metric, *_ in rows)])
    head = f"{'scenario':<{name_w}}{'metric':<{metric_w}}{'median':>12}{'min - max':>24}  "
    head += f"{'target':<14}met"
    print(head, file=out)
    print("-" * len(head), file=out)
    for name, metric, value, row in rows:
        span = f"{_fmt(row['min'])} - {_fmt(row['max'])}"
        met = {True: "yes", False: "NO", None: ""}[row["met"]]
        print(
            f"{name:<{name_w}}{metric:<{metric_w}}{_fmt(value):>12}{span:>24}  "
            f"{row['target'] or '':<14}{met}",
            file=out,
        )


def machine() -> dict[str, Any]:
    """What the numbers were measured on, and how busy it was."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "loadavg": os.getloadavg(),
    }
