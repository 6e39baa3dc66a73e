"""A running pipeline keeps its long-lived objects out of the collector, and lets them go after.

Why it matters: 10,000 sensor tasks made every full collection stall the loop ~100 ms
(topology/memory.py); and a pipeline rebuilt on reload must not keep the old one's objects
frozen forever.
"""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

from benchmarks import configs
from daemon.config import parse_config
from daemon.runtime import RunState
from daemon.topology.pipeline import Pipeline


def config_text(tmp_path: Path) -> str:
    return configs.render(
        {
            "daemon": {"dead_letter": str(tmp_path / "dead-letter.jsonl")},
            "sources": [
                {"type": "simulated", "sensors": 50, "rate_hz": 1000000.0, "max_readings": 400}
            ],
            "stages": [{"type": "moving_average", "window": 5}],
            "sinks": [
                {
                    "type": "jsonl",
                    "path": str(tmp_path / "out.jsonl"),
                    "spool_dir": str(tmp_path / "spool"),
                    "encode_ahead": False,
                }
            ],
        }
    )


async def test_frozen_while_sources_run_and_thawed_after(tmp_path: Path) -> None:
    gc.unfreeze()
    config = parse_config(config_text(tmp_path))
    state = RunState.fresh(config.daemon.dead_letter)
    pipeline = Pipeline(config, state)
    running = asyncio.create_task(pipeline.run())
    frozen_while_running = 0
    while not running.done():
        frozen_while_running = max(frozen_while_running, gc.get_freeze_count())
        await asyncio.sleep(0)
    await running
    assert state.counters.written + state.counters.filtered == 50 * 400
    assert frozen_while_running > 1000  # the source's tasks, the components, the modules
    assert gc.get_freeze_count() == 0
