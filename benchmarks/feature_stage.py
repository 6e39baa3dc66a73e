"""The features stage alone, inline against its process pool (not a test).

    .venv/bin/python -m benchmarks.feature_stage [--batches N] [--rounds N] [--max-pending N]

Why: the offload scenario shows the pool slower than inline on two cores; this says why. It
feeds ready-made batches (1,000 sensors x 8 readings, window 256) straight into the stage and
reports, per reading, the wall time and the event-loop thread's CPU time: what the pool takes
off the loop (the math) against what its round trip costs (values and timestamps pickled to a
worker, the records back). Rounds alternate inline and pool, so a busy moment hits both.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import AsyncIterator, Iterator

import numpy as np
import uvloop

from daemon.batch import Batch
from daemon.runtime import ComponentContext
from daemon.sensors import SENSORS
from daemon.stages.features.stage import Features

SENSOR_COUNT = 1000
PER_SENSOR = 8  # readings of each sensor in a batch: 8,000-reading batches, like the source's


def make_batches(count: int) -> Iterator[Batch]:
    index = np.array([SENSORS.intern(f"F{i:04d}") for i in range(SENSOR_COUNT)], dtype=np.int32)
    sensor = np.repeat(index, PER_SENSOR)
    for b in range(count):
        seq = np.tile(np.arange(b * PER_SENSOR, (b + 1) * PER_SENSOR), SENSOR_COUNT)
        yield Batch.from_columns(sensor, seq, 1.7e9 + seq / 1000.0, np.sin(seq / 10.0) + sensor)


async def one_run(batches: list[Batch], workers: int, max_pending: int) -> dict[str, float]:
    stage = Features(
        Features.Config(window=256, workers=workers, max_pending=max_pending),
        ComponentContext.standalone("stages[0]"),
    )
    await stage.open()

    async def upstream() -> AsyncIterator[Batch]:
        for batch in batches:
            yield batch

    readings = 0
    wall, cpu = time.perf_counter(), time.thread_time()
    try:
        async for out in stage.process(upstream()):
            readings += len(out)
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    finally:
        await stage.close()
    return {
        "workers": workers,
        "wall_ns_per_reading": round(wall / readings * 1e9, 1),
        "loop_cpu_ns_per_reading": round(cpu / readings * 1e9, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-pending", type=int, default=8, help="the stage's default: 8")
    args = parser.parse_args()
    batches = list(make_batches(args.batches))
    runs: dict[int, list[dict[str, float]]] = {0: [], 1: []}
    for _ in range(args.rounds):
        for workers, results in runs.items():
            results.append(uvloop.run(one_run(batches, workers, args.max_pending)))
    for workers, results in runs.items():
        summary = {
            key: float(np.median([r[key] for r in results]))
            for key in ("wall_ns_per_reading", "loop_cpu_ns_per_reading")
        }
        print(json.dumps({"workers": workers, "median_of": len(results), **summary}))


if __name__ == "__main__":  # the pool's forkserver re-imports this module
    main()
