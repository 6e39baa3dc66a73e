"""The soak: the daemon at 100,000 readings/s for 30 minutes, a fault every minute.

`python -m benchmarks.soak [--seconds 1800] [--fault-every 60] [--sample-every 5]`: outside CI.
The faults cycle through what an operator's day brings: a reload (SIGHUP), the data directory
deleted, a feature-pool worker or encoder child SIGKILLed, the daemon stopped (SIGSTOP) for 3 s.
Every `--sample-every` seconds it samples the daemon's process tree from /proc (RSS, open file
descriptors and threads of the main process, the spool's bytes on disk) and prints one JSON
line; at the end SIGTERM, and a summary line: first and last samples, maxima, growth after the
first minute, the counters at shutdown and whether they reconcile. Exit 1 when they do not, or
when RSS or FDs grew more than 10 % from the first minute to the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks import configs
from benchmarks.procstat import tree_usage

ROOT = Path(__file__).resolve().parents[1]


def soak_config(tmp: Path) -> Path:
    doc = {
        "daemon": {
            "dead_letter": str(tmp / "data" / "dead-letter.jsonl"),
            "state_dir": str(tmp / "data" / "state"),
            "health_interval_s": 5.0,
        },
        "sources": [{"type": "simulated", "sensors": 1000, "rate_hz": 100.0, "fault_rate": 0.01}],
        "stages": [*configs.default_chain(), configs.features(workers=1)],
        "sinks": [
            {
                "type": "jsonl",
                "path": str(tmp / "data" / "readings.jsonl"),
                "spool_dir": str(tmp / "spool"),
                "rotate_bytes": 64 * 1024 * 1024,
            }
        ],
    }
    return configs.write(tmp / "soak.toml", doc)


def descendants(pid: int) -> list[int]:
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            frontier += children
    return found


def _proc_count(pid: int, what: str) -> int:
    try:
        if what == "fds":
            return sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def inject(kind: str, proc: subprocess.Popen[bytes], tmp: Path, rng: random.Random) -> str:
    if kind == "reload":
        proc.send_signal(signal.SIGHUP)
    elif kind == "delete_data":
        shutil.rmtree(tmp / "data", ignore_errors=True)
    elif kind == "kill_child":
        children = descendants(proc.pid)
        if not children:
            return "no child to kill"
        victim = rng.choice(children)
        os.kill(victim, signal.SIGKILL)
        return f"killed {victim}"
    elif kind == "stall":
        proc.send_signal(signal.SIGSTOP)
        time.sleep(3.0)  # the fault is a stopped process: it lasts this long
        proc.send_signal(signal.SIGCONT)
    return kind


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1800.0)
    parser.add_argument("--fault-every", type=float, default=60.0)
    parser.add_argument("--sample-every", type=float, default=5.0)
    args = parser.parse_args(argv)
    rng = random.Random(7)
    tmp = Path(tempfile.mkdtemp(prefix="ingestd-soak-"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon", "run", "-c", str(soak_config(tmp))],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    events: list[dict[str, Any]] = []
    reader = threading.Thread(target=_read, args=(proc, events), daemon=True)
    reader.start()
    faults = ["reload", "delete_data", "kill_child", "stall"]
    samples: list[dict[str, Any]] = []
    began = time.monotonic()
    next_fault, n = began + args.fault_every, 0
    try:
        while (now := time.monotonic()) - began < args.seconds and proc.poll() is None:
            if now >= next_fault:
                kind = faults[n % len(faults)]
                print(
                    json.dumps(
                        {
                            "fault": kind,
                            "at_s": round(now - began, 1),
                            "result": inject(kind, proc, tmp, rng),
                        }
                    ),
                    flush=True,
                )
                n, next_fault = n + 1, next_fault + args.fault_every
            usage = tree_usage(proc.pid)
            health: dict[str, Any] = next(
                (e for e in reversed(events) if e.get("event") == "pipeline_health"), {}
            )
            sample = {
                "at_s": round(now - began, 1),
                "rss_mb": round(usage.rss_bytes / 2**20, 1) if usage else None,
                "fds": _proc_count(proc.pid, "fds"),
                "threads": _proc_count(proc.pid, "threads"),
                "spool_bytes": _du(tmp / "spool"),
                "written": health.get("counters", {}).get("written"),
            }
            samples.append(sample)
            print(json.dumps(sample), flush=True)
            time.sleep(args.sample_every)  # the sampling period of a measurement, not a sync
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        reader.join(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    return _summary(samples, events, code, args.fault_every)


def _read(proc: subprocess.Popen[bytes], events: list[dict[str, Any]]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        try:
            events.append(json.loads(line))
        except ValueError:
            continue


def _summary(
    samples: list[dict[str, Any]], events: list[dict[str, Any]], code: int, warm_s: float
) -> int:
    done = [e for e in events if e.get("event") == "shutdown_complete"]
    counters = done[-1]["counters"] if done else {}
    after = [s for s in samples if s["at_s"] >= warm_s] or samples
    first, last = after[0], samples[-1]

    def growth(key: str) -> float | None:
        a, b = first.get(key), last.get(key)
        return round((b - a) / a * 100, 1) if a and b is not None and a > 0 else None

    growths = {k: growth(k) for k in ("rss_mb", "fds")}
    summary: dict[str, Any] = {
        "summary": "soak",
        "exit": code,
        "samples": len(samples),
        "first_after_warmup": first,
        "last": last,
        "max": {
            k: max((s[k] for s in samples if s[k] is not None), default=None)
            for k in ("rss_mb", "fds", "threads", "spool_bytes")
        },
        "growth_pct": growths,
        "counters": counters,
        "reconciled": bool(done) and done[-1].get("reconciled"),
    }
    print(json.dumps(summary), flush=True)
    grew = [k for k, g in growths.items() if g is not None and g > 10]
    return 0 if summary["reconciled"] and code == 0 and not grew else 1


if __name__ == "__main__":
    sys.exit(main())
