"""Run one test's stages in this process and collect the records at its point.

The stages are built as `daemon/topology/build.py` builds them (each its own context, labelled
as in the daemon, over one fresh `RunState`), opened and closed as a pipeline does, and fed the
inputs as column batches in input order, so stateful stages (windows, alert hold times) see
the stream a source would have given them. Nothing else of the daemon runs: no source, queue,
sink, spool or file.

What is compared is what a sink writes: each batch at the point goes through the wire encoder
and comes back as JSON objects (a reading's `ts` as its ISO-8601 text, `kind = "reading"`,
then the batch's derived records). At `sinks[N]`, the sink's `kinds` cut each batch first,
with the same code the daemon puts in front of each sink.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from structlog.testing import capture_logs

from daemon.batch import Batch
from daemon.components import Component, Source, Stage
from daemon.config import ComponentSpec
from daemon.resilience.kinds import Taking
from daemon.runtime import ComponentContext, Lifetime, RunState
from daemon.sensors import SENSORS
from daemon.testing.inputs import InputReading
from daemon.testing.spec import COUNTED, PipelineTest
from daemon.wire.encode import encode_batch

_SHOWN_LEVELS = ("warning", "error", "critical")


@dataclass
class Outcome:
    records: list[dict[str, Any]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    logs: list[dict[str, Any]] = field(default_factory=list)  # warnings and errors logged
    error: str | None = None  # the stages raised or timed out: no comparison


async def run_case(case: PipelineTest) -> Outcome:
    state = RunState.fresh("/dev/null")  # rejects are counted; the dead letters are not kept
    lifetime = Lifetime()
    chain = case.pipeline.stages
    specs = chain[: case.at.stages_run(len(chain))]
    outcome = Outcome()
    with capture_logs() as logs:

        def make(spec: ComponentSpec) -> Any:
            return spec.cls(spec.config, ComponentContext(spec.label, spec.kind, state, lifetime))

        stages: list[Stage[Any]] = [make(spec) for spec in specs]
        source: Source[Any] | None = make(case.replay) if case.replay is not None else None
        opened: list[Component[Any]] = []
        streams: list[AsyncIterator[Batch]] = []  # the chain of generators, input first
        try:
            async with asyncio.timeout(case.keys.timeout_s):
                for component in [*([source] if source else []), *stages]:
                    await component.open()
                    opened.append(component)
                streams.append(
                    source.stream() if source else _batches(case.inputs, case.keys.batch_size)
                )
                for stage in stages:
                    streams.append(stage.process(streams[-1]))
                outcome.records = _records(case, [batch async for batch in streams[-1]])
        except TimeoutError:
            lifetime.force.set()  # let a stage waiting on a pool give up at close
            outcome.error = f"the stages did not finish within timeout_s = {case.keys.timeout_s}"
        except Exception as exc:
            outcome.error = f"the run raised {exc!r}"
        finally:
            lifetime.stop.set()
            for stream in reversed(streams):  # as a pipeline ends: each generator's finally runs
                await _aclose(stream)
            for component in reversed(opened):
                await component.close()
    counters = state.counters.snapshot()
    outcome.counters = {name: counters[name] for name in COUNTED}
    outcome.logs = [dict(entry) for entry in logs if entry.get("log_level") in _SHOWN_LEVELS]
    return outcome


async def _aclose(stream: AsyncIterator[Batch]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


async def _batches(inputs: tuple[InputReading, ...], size: int) -> AsyncIterator[Batch]:
    """The inputs as column batches of `size` readings, in order."""
    for first in range(0, len(inputs), size):
        chunk = inputs[first : first + size]
        names = [name for name, _ in chunk[0].columns]
        yield Batch.from_columns(
            [SENSORS.intern(r.sensor_id, r.unit) for r in chunk],
            [r.seq for r in chunk],
            [r.ts for r in chunk],
            [r.value for r in chunk],
            [r.stale for r in chunk],
            columns={n: [dict(r.columns)[n] for r in chunk] for n in names},
        )


def _records(case: PipelineTest, batches: list[Batch]) -> list[dict[str, Any]]:
    """The batches at the point as the sink there would be handed them, decoded from the wire."""
    taking = None
    if case.at.section == "sinks" and case.at.index is not None:
        resilience = case.pipeline.sinks[case.at.index].resilience
        assert resilience is not None and resilience.kinds is not None  # the loader resolves it
        taking = Taking(resilience.kinds)
    records: list[dict[str, Any]] = []
    for batch in batches:
        part = taking.part(batch) if taking is not None else batch
        if part is not None:
            records.extend(orjson.loads(line) for line in encode_batch(part).splitlines())
    return records
