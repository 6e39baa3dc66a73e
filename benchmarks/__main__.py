"""`python -m benchmarks [--quick] [--runs N] [--scenario NAME]`: one JSON object per scenario run
on stdout, then a summary table of medians on stderr.

Scenarios run the real daemon as a process (`python -m daemon run`) on a fixed workload and time
it from its own `daemon_started` to `shutdown_complete` log events; peak RSS is the daemon's own
VmHWM, reported in `shutdown_complete`. The comparison pipelines (`benchmarks/baseline.py`) run
in the same invocation on the same workload, so ratios are measured, not remembered.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from benchmarks import baseline

FEATURES = """
[[stages]]
type = "features"
window = 256
workers = {workers}
"""


def daemon_config(tmp: Path, sensors: int, per_sensor: int, features: str) -> Path:
    text = f"""
[daemon]
log_level = "info"
health_interval_s = 5
dead_letter = "{tmp / "dead-letter.jsonl"}"

[[sources]]
type = "simulated"
sensors = {sensors}
rate_hz = 1e9
max_readings = {per_sensor}
anomaly_rate = 0.05
seed = 7

[[stages]]
type = "threshold_filter"
min = 10.0
max = 100.0

[[stages]]
type = "normalize"
window = 50

[[stages]]
type = "moving_average"
window = 10
{features}
[[sinks]]
type = "jsonl"
path = "{tmp / "out.jsonl"}"
spool_dir = "{tmp / "spool"}"
"""
    path = tmp / "bench.toml"
    path.write_text(text)
    return path


def _ts(event: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


def run_daemon(sensors: int, per_sensor: int, features: str = "") -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ingestd-bench-") as d:
        tmp = Path(d)
        cfg = daemon_config(tmp, sensors, per_sensor, features)
        proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "-c", str(cfg)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = proc.communicate()  # the daemon exits by itself when the sources are done
        if proc.returncode != 0:
            raise SystemExit(f"daemon failed ({proc.returncode}): {err.decode()[-500:]}")
        events = [orjson.loads(line) for line in out.splitlines() if line.strip()]
        start = next(e for e in events if e["event"] == "daemon_started")
        end = next(e for e in events if e["event"] == "shutdown_complete")
        seconds = _ts(end) - _ts(start)
        counters = end["counters"]
        return {
            "readings": counters["read"],
            "written": counters["written"],
            "features": counters.get("features", 0),
            "seconds": round(seconds, 3),
            "rate": round(counters["read"] / seconds),
            "peak_rss_mb": end.get("peak_rss_mb"),
        }


def run_baseline(sensors: int, per_sensor: int, fast: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ingestd-bench-") as d:
        dumps = orjson.dumps if fast else baseline.json_dumps
        result = baseline.run_chain(Path(d) / "out.jsonl", sensors, per_sensor, dumps)
        return {k: round(v, 3) for k, v in result.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a tiny workload (for the tests)")
    parser.add_argument("--runs", type=int, default=5, help="runs per scenario (median)")
    parser.add_argument("--scenario", action="append", help="only these scenarios")
    args = parser.parse_args(argv)
    sensors, per_sensor, runs = (50, 300, 1) if args.quick else (1000, 1000, args.runs)

    scenarios: dict[str, Any] = {
        "default_chain": lambda: run_daemon(sensors, per_sensor),
        "with_features": lambda: run_daemon(sensors, per_sensor, FEATURES.format(workers=1)),
        "baseline_json": lambda: run_baseline(sensors, per_sensor, fast=False),
        "baseline_orjson": lambda: run_baseline(sensors, per_sensor, fast=True),
    }
    chosen = args.scenario or list(scenarios)
    medians: dict[str, float] = {}
    for name in chosen:
        rates = []
        for i in range(runs):
            result = scenarios[name]()
            rates.append(result["rate"])
            print(json.dumps({"scenario": name, "run": i, **result}), flush=True)
        medians[name] = statistics.median(rates)
        summary = {
            "scenario": name,
            "median_rate": medians[name],
            "min": min(rates),
            "max": max(rates),
            "runs": runs,
        }
        print(json.dumps({"summary": summary}), flush=True)
    if "default_chain" in medians:
        for other in ("baseline_json", "baseline_orjson"):
            if other in medians:
                ratio = medians["default_chain"] / medians[other]
                print(json.dumps({"ratio": f"default_chain/{other}", "value": round(ratio, 2)}))
    print(f"{'scenario':<18}{'median readings/s':>20}", file=sys.stderr)
    for name, rate in medians.items():
        print(f"{name:<18}{rate:>20,.0f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
