"""CPU time per reading of each hot-path component, on the batches the benchmark makes (not a test).

    .venv/bin/python -m benchmarks.hotpath [--batches N]

The simulated source flat out emits each sensor's readings in long runs: a batch of 8,192 holds
eight sensors' 1,024 readings each. This generates such batches and times, per reading, the
source's batch generation, each stage of the default chain and the wire encoder, as CPU time
(best of 5, so other processes on a shared machine skew it little). It only uses APIs that
predate the optimisations, so it runs against an older tree too, for before/after numbers:

    PYTHONPATH=/path/to/old/tree .venv/bin/python benchmarks/hotpath.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from daemon.batch import Batch
from daemon.components import Stage
from daemon.runtime import ComponentContext
from daemon.sources.simulated.generate import Chunk, generate
from daemon.sources.simulated.model import SensorModel, SensorState
from daemon.stages.moving_average import MovingAverage
from daemon.stages.normalize import Normalize
from daemon.stages.threshold import ThresholdFilter
from daemon.wire.encode import encode_batch

SENSORS, RUN, RUNS_PER_BATCH = 1000, 1024, 8
T = TypeVar("T")


def chunks(k: int) -> list[Chunk]:
    out = []
    for j in range(RUNS_PER_BATCH):
        i, lap = (k * RUNS_PER_BATCH + j) % SENSORS, (k * RUNS_PER_BATCH + j) // SENSORS
        out.append((i, lap * RUN, lap * RUN, RUN, 1.79e9 + lap * RUN * 1e-9))
    return out


def best_cpu(run: Callable[[Any], T], prepare: Callable[[], Any], reps: int = 5) -> tuple[float, T]:
    best, result = float("inf"), None
    for _ in range(reps):
        arg = prepare()
        start = time.process_time()
        result = run(arg)
        best = min(best, time.process_time() - start)
    assert result is not None
    return best, result


async def _feed(batches: list[Batch]) -> AsyncIterator[Batch]:
    for b in batches:
        yield b


def through(stage_type: type[Stage[Any]], config: Any) -> Callable[[list[Batch]], list[Batch]]:
    async def go(batches: list[Batch]) -> list[Batch]:
        stage = stage_type(config, ComponentContext.standalone("stages[0]"))
        return [b async for b in stage.process(_feed(batches))]

    return lambda batches: asyncio.run(go(batches))


def copies(batches: list[Batch]) -> list[Batch]:
    return [
        Batch.from_columns(b.sensor, b.seq, b.ts, b.value, b.stale, columns=dict(b.columns))
        for b in batches
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=40)
    nb = parser.parse_args().batches
    model = SensorModel.build(
        sensors=SENSORS, seed=7, rate_hz=1e9, id_prefix="S", anomaly_rate=0.05, fault_rate=0.0
    )

    def generated(_: None) -> list[Batch]:
        state = SensorState()
        state.grow(SENSORS)
        return [generate(model, state, chunks(k), 1e9, 30.0)[0] for k in range(nb)]

    t_gen, batches = best_cpu(generated, lambda: None)
    n = sum(len(b) for b in batches)
    threshold = through(ThresholdFilter, ThresholdFilter.Config(min=10.0, max=100.0))
    t_thr, kept = best_cpu(threshold, lambda: copies(batches))
    m = sum(len(b) for b in kept)
    t_norm, normed = best_cpu(through(Normalize, Normalize.Config(window=50)), lambda: copies(kept))
    average = through(MovingAverage, MovingAverage.Config(window=10))
    t_avg, final = best_cpu(average, lambda: copies(normed))
    t_enc, wire = best_cpu(lambda bs: [encode_batch(b) for b in bs], lambda: final)
    ns = {
        "generate": t_gen / n,
        "threshold_filter": t_thr / n,
        "normalize": t_norm / m,
        "moving_average": t_avg / m,
        "encode": t_enc / m,
    }
    report = {k: round(v * 1e9, 1) for k, v in ns.items()}
    report["total"] = round(sum(report.values()), 1)
    report["bytes_per_reading"] = round(sum(map(len, wire)) / m, 1)
    print(json.dumps({"readings": n, "cpu_ns_per_reading": report}))


if __name__ == "__main__":
    main()
