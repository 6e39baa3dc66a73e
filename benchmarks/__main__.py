"""`python -m benchmarks [--quick] [--runs N] [--scenario NAME]...`: every scenario of issue 4.

Stdout gets one JSON object per line: `machine` first, then one object per scenario run
(`{"scenario": ..., "run": i, ...}`), then a `summary` per headline number (median, min, max,
target, met) and each `ratio`, then `load_at_end`. Stderr gets the same summary as a table.

Scenarios (group: names): throughput: default_chain, with_features, baseline_json,
baseline_orjson; memory: memory_long; concurrency: concurrency, concurrency_every_tick,
concurrency_coalesced; backpressure: backpressure; offload: features_inline,
features_1_worker, features_2_workers, and the first two with the encoder inline
(`..._no_encoder_child`). Within a group the scenarios run round-robin, `--runs` rounds (the
long memory run once), so a busy moment of the machine hits all of them alike and ratios
compare runs made side by side.

The daemon runs as a real process on a generated config (see `workloads.py`); a run whose
counters do not reconcile at shutdown, or a backpressure run that fails its checks (source
slowed, sink paced, nothing lost, memory bounded), makes the exit status 1 after everything is
printed. `--quick` runs all of it on a tiny workload (the test suite does). `--plots DIR` also
draws this run's charts into DIR (`benchmarks.plots`; without matplotlib it says how to install
it, and the run and its exit status are unaffected).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import load, plots, report, throughput
from benchmarks.daemonrun import DaemonFailed
from benchmarks.workloads import FULL, QUICK, Sizes

Runner = Callable[[], dict[str, Any]]


def scenarios(sizes: Sizes, args: argparse.Namespace) -> dict[str, dict[str, Runner]]:
    """Group → scenario name → a zero-argument run."""
    return {
        "throughput": {
            "default_chain": lambda: throughput.fixed_workload(sizes, None),
            "with_features": lambda: throughput.fixed_workload(sizes, 2),
            "baseline_json": lambda: throughput.per_record_chain(sizes, fast=False),
            "baseline_orjson": lambda: throughput.per_record_chain(sizes, fast=True),
        },
        "memory": {"memory_long": lambda: load.memory_long(sizes, args.long_readings)},
        "concurrency": {
            "concurrency": lambda: load.concurrency(sizes, args.concurrency_s),
            # CPU against latency, measured: every sensor ticking at its rate (one reading a
            # tick), and ticks coalesced to one a second per sensor (ten readings a tick).
            "concurrency_every_tick": lambda: load.concurrency(
                sizes, args.concurrency_s, wakeups_hz=sizes.conc_sensors * sizes.conc_rate_hz
            ),
            "concurrency_coalesced": lambda: load.concurrency(
                sizes, args.concurrency_s, wakeups_hz=sizes.conc_sensors
            ),
        },
        "backpressure": {"backpressure": lambda: load.backpressure(sizes, args.backpressure_s)},
        "offload": {
            "features_inline": lambda: throughput.offload(sizes, 0),
            "features_1_worker": lambda: throughput.offload(sizes, 1),
            "features_2_workers": lambda: throughput.offload(sizes, 2),
            # The encoder inline: the second core is the pool's alone.
            "features_inline_no_encoder_child": lambda: throughput.offload(sizes, 0, False),
            "features_1_worker_no_encoder_child": lambda: throughput.offload(sizes, 1, False),
        },
    }


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=(__doc__ or "").split("\n\n")[0],
    )
    parser.add_argument("--quick", action="store_true", help="a tiny workload (for the tests)")
    parser.add_argument("--runs", type=int, default=5, help="rounds per group (median; 5)")
    parser.add_argument(
        "--scenario",
        action="append",
        metavar="NAME",
        help="only this scenario or group (repeatable)",
    )
    parser.add_argument(
        "--long-readings", type=int, help="readings in the long memory run (50,000,000)"
    )
    parser.add_argument("--concurrency-s", type=float, help="concurrency run length (60 s)")
    parser.add_argument(
        "--plots", metavar="DIR", help="draw this run's charts (PNG) into DIR, e.g. a scratch dir"
    )
    parser.add_argument(
        "--backpressure-s",
        type=float,
        help="backpressure run length at least (30 s; then until the buffers are steady)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    args.sizes = sizes
    args.runs = 1 if args.quick else args.runs
    args.long_readings = args.long_readings or sizes.long_readings
    args.concurrency_s = args.concurrency_s or sizes.conc_s
    args.backpressure_s = args.backpressure_s or sizes.bp_s
    return args


EMITTED: list[dict[str, Any]] = []  # this invocation's lines, for `--plots`


def emit(obj: dict[str, Any]) -> None:
    EMITTED.append(obj)
    print(json.dumps(obj), flush=True)


def draw(directory: str) -> None:
    """This run's charts (the ones its scenarios have data for) into `directory`."""
    if not plots.has_matplotlib():
        print(f"--plots: {plots.INSTALL}", file=sys.stderr)
        return
    for path, _ in plots.render([("this run", EMITTED)], Path(directory)).values():
        print(f"chart: {path}", file=sys.stderr)


def failures(name: str, result: dict[str, Any]) -> list[str]:
    """Correctness, not speed: what must hold in every run of every size."""
    out = []
    if result.get("reconciled") is False:
        out.append(f"{name}: counters did not reconcile at shutdown")
    out += [f"{name}: check {k} failed" for k, ok in result.get("checks", {}).items() if not ok]
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    sizes: Sizes = args.sizes
    groups = scenarios(sizes, args)
    wanted = set(args.scenario or groups)
    known = set(groups) | {n for g in groups.values() for n in g}
    if unknown := wanted - known:
        print(f"unknown scenario(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    emit({"machine": report.machine(), "quick": args.quick, "sizes": dataclasses.asdict(sizes)})
    results: dict[str, list[dict[str, Any]]] = {}
    problems: list[str] = []
    for group, members in groups.items():
        chosen = {n: run for n, run in members.items() if group in wanted or n in wanted}
        rounds = 1 if group == "memory" else args.runs
        for i in range(rounds):
            for name, run in chosen.items():
                try:
                    result = run()
                except DaemonFailed as exc:  # report it, keep measuring the others
                    problems.append(f"{name}: {exc}")
                    emit({"scenario": name, "run": i, "error": str(exc)})
                    continue
                results.setdefault(name, []).append({"run": i, **result})
                problems += failures(name, result)
                emit({"scenario": name, "run": i, **result})
    summary, ratio = report.summaries(results), report.ratios(results)
    for s in summary:
        emit({"summary": s})
    for r in ratio:
        emit(r)
    emit({"load_at_end": os.getloadavg()})
    report.table(summary, ratio, sys.stderr)
    if args.plots:
        draw(args.plots)
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
