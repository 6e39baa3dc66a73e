"""Random sequences of faults against an in-process pipeline (hypothesis).

Each example runs a bounded generation of simulated sensors into a sink that, by its own write
count, goes down for a while, refuses a batch for good, or has the generation forced to stop;
then a second generation (an empty file source, the same spool) replays what was spooled. After
each generation the counter identity holds, and after both every reading emitted is in the sink
or in the dead-letter file: nothing lost, whatever the sequence.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.batch import Batch
from daemon.components import PermanentSinkError, Sink, SinkError
from daemon.config import parse_config
from daemon.runtime import RunState
from daemon.sensors import SENSORS
from daemon.topology.pipeline import Pipeline

SENSORS_N, READINGS = 4, 120


@dataclass
class Script:
    """What the sink does at its n-th write (counted from 1, retries included)."""

    down: tuple[int, int] = (0, 0)  # writes [start, start + length) fail (retryable)
    refuse_at: int = 0  # this write is refused for good (dead-lettered)
    force_at: int = 0  # at this write, the generation is forced to stop
    writes: int = 0
    received: list[tuple[str, int]] = field(default_factory=list)
    force: Callable[[], None] | None = None


SCRIPTS: dict[str, Script] = {}


@dataclass(frozen=True)
class ScriptedConfig:
    script: str


class ScriptedSink(Sink[ScriptedConfig], name="test_scripted_sink"):
    """A sink doing what its script says, keeping what it acknowledged."""

    async def write(self, batch: Batch) -> None:
        script = SCRIPTS[self.config.script]
        script.writes += 1
        n = script.writes
        if n == script.force_at and script.force is not None:
            script.force()
        start, length = script.down
        if start <= n < start + length:
            raise SinkError(f"down at write {n}")
        if n == script.refuse_at and len(batch):
            raise PermanentSinkError(f"refused at write {n}")
        script.received += [
            (SENSORS.sensor_id(int(s)), int(q))
            for s, q in zip(batch.sensor, batch.seq, strict=True)
        ]


def config(tmp: Path, source: str) -> str:
    return f"""
[daemon]
dead_letter = "{tmp}/dead-letter.jsonl"
queue_batches = 4
shutdown_timeout_s = 5

{source}

[[sinks]]
type = "test_scripted_sink"
script = "{tmp.name}"
spool_dir = "{tmp}/spool"
[sinks.retry]
attempts = 2
base_delay_s = 0
jitter = false
[sinks.breaker]
failure_threshold = 2
reset_timeout_s = 0.05
"""


SIMULATED = f"""
[[sources]]
type = "simulated"
sensors = {SENSORS_N}
rate_hz = 100000
max_readings = {READINGS}
max_batch = 16
id_prefix = "SEQFAULT"
"""


def reconciled(state: RunState) -> bool:
    c = state.counters
    return c.read + c.replayed == c.written + c.filtered + c.rejected + c.spooled


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    down_start=st.integers(0, 30),
    down_length=st.integers(0, 12),
    refuse_at=st.integers(0, 40),
    force_at=st.integers(0, 40),
)
async def test_no_sequence_of_faults_loses_a_reading(
    tmp_path_factory: object, down_start: int, down_length: int, refuse_at: int, force_at: int
) -> None:
    tmp = tmp_path_factory.mktemp("seq")  # type: ignore[attr-defined]
    script = SCRIPTS[tmp.name] = Script((down_start, down_length), refuse_at, force_at)
    try:
        state = RunState.fresh(str(tmp / "dead-letter.jsonl"))
        first = Pipeline(parse_config(config(tmp, SIMULATED)), state)
        script.force = first.force
        await first.run()
        assert reconciled(state), state.counters
        assert state.counters.read == SENSORS_N * READINGS or script.force_at

        script.down, script.refuse_at, script.force_at = (0, 0), 0, 0  # healthy now
        (tmp / "empty.jsonl").write_text("")
        replay = f'[[sources]]\ntype = "file"\npath = "{tmp}/empty.jsonl"\n'
        second_state = RunState.fresh(str(tmp / "dead-letter.jsonl"))
        await Pipeline(parse_config(config(tmp, replay)), second_state).run()
        assert reconciled(second_state), second_state.counters
        assert second_state.counters.spooled == 0  # the spool is empty again

        dead = tmp / "dead-letter.jsonl"
        lettered = {
            (r["raw"]["sensor_id"], r["raw"]["seq"])
            for r in map(json.loads, dead.read_text().splitlines() if dead.exists() else [])
        }
        emitted = {(f"SEQFAULT{i:04d}", seq) for i in range(SENSORS_N) for seq in range(READINGS)}
        taken = set(script.received) | lettered
        read_first = state.counters.read
        if read_first == SENSORS_N * READINGS:
            assert emitted <= taken, f"lost: {sorted(emitted - taken)[:5]}"
        else:  # a forced stop: the sources ended early; what they read is all there
            assert len(taken & emitted) >= read_first
    finally:
        del SCRIPTS[tmp.name]
