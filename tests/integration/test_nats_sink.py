"""The `nats` sink against real servers: the machine's on 4222 (a unique stream and subject per
test, the stream deleted after) and a private one for what stops the server. What was stored
is read back from the stream, never inferred from the sink."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import nats
import numpy as np
import pytest
from nats.js import JetStreamContext

from daemon.batch import Batch
from daemon.components import SinkError
from daemon.sinks.nats import NatsSink, NatsSinkConfig
from tests.brokers.nats import NatsServer, delete_stream, free_port, unique_name
from tests.support import TestContext

pytestmark = pytest.mark.server("nats")
URL = "nats://127.0.0.1:4222"


@pytest.fixture
async def names() -> AsyncIterator[tuple[str, str]]:
    """A unique stream name and subject prefix; the stream is deleted afterwards."""
    name = unique_name("SINK")
    yield name, name.lower()
    await delete_stream(URL, name)


@pytest.fixture
async def js() -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(URL, connect_timeout=2, max_reconnect_attempts=0)
    yield nc.jetstream()
    await nc.close()


def batch_of(sensors: list[str], per_sensor: int, first: int = 0) -> Batch:
    seq = np.arange(first, first + per_sensor)
    return Batch.concat(
        [Batch.of_sensor(s, seq, 1.7e9 + seq, seq * 0.5, unit="degC") for s in sensors]
    )


def sink(**keys: Any) -> NatsSink:
    return NatsSink(NatsSinkConfig(**keys), TestContext("sinks[0]", "/dev/null"))


async def stored(js: JetStreamContext, stream: str) -> list[tuple[str, dict[str, Any]]]:
    info = await js.stream_info(stream)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(stream, seq)
        assert msg.subject is not None and msg.data is not None
        out.append((msg.subject, json.loads(msg.data)))
    return out


async def until(predicate: Callable[[], Any], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {within_s}s")
        await asyncio.sleep(0.01)


async def test_jetstream_stores_every_record_once_acked(
    names: tuple[str, str], js: JetStreamContext
) -> None:
    stream, prefix = names
    out = sink(subject=prefix + ".{kind}.{sensor_id}", stream=stream, create=True)
    await out.open()
    sensors = ["N-1", "room 2.temp", "*>"]  # one subject token each, whatever the id holds
    first = batch_of(sensors, 300)
    first.derived = [{"kind": "features", "sensor_id": "N-1", "window_end_seq": 9, "mean": 2.0}]
    await out.write(first)
    await out.write(batch_of(sensors, 300, first=300))
    await out.close()
    info = await js.stream_info(stream)
    assert info.config.subjects == [f"{prefix}.*.*"]  # created, capturing the template
    records = await stored(js, stream)
    assert len(records) == 1801 == out.ctx.gauge()["messages"]
    for sensor, token in zip(sensors, ["N-1", "room%202%2Etemp", "%2A%3E"], strict=True):
        mine = [r for s, r in records if s == f"{prefix}.reading.{token}"]
        assert [r["seq"] for r in mine] == list(range(600))
        assert {r["sensor_id"] for r in mine} == {sensor}
    assert (f"{prefix}.features.N-1", first.derived[0]) in records


async def test_a_subject_no_stream_captures_fails_the_batch(names: tuple[str, str]) -> None:
    _, prefix = names
    out = sink(subject=prefix + ".{sensor_id}", ack_timeout_s=2.0)
    with pytest.raises(SinkError, match="NoStreamResponse"):
        await out.write(batch_of(["N-1"], 5))
    await out.close()


async def test_a_subject_captured_by_another_stream_than_stream_fails_the_batch(
    names: tuple[str, str], js: JetStreamContext
) -> None:
    other, prefix = names
    await js.add_stream(name=other, subjects=[f"{prefix}.>"])
    out = sink(subject=prefix + ".{sensor_id}", stream=other + "X")
    with pytest.raises(SinkError, match="expected stream does not match"):
        await out.write(batch_of(["N-1"], 5))
    await out.close()
    assert (await js.stream_info(other)).state.messages == 0  # nothing landed elsewhere


async def test_core_nats_has_every_message_once_the_flush_returns(names: tuple[str, str]) -> None:
    _, prefix = names
    nc = await nats.connect(URL)
    got: list[tuple[str, bytes]] = []

    async def keep(msg: Any) -> None:
        got.append((msg.subject, msg.data))

    await nc.subscribe(f"{prefix}.>", cb=keep)
    await nc.flush()
    out = sink(subject=prefix + ".{kind}.{sensor_id}", jetstream=False)
    await out.write(batch_of(["C-1", "C-2"], 500))
    await out.close()

    async def all_in() -> bool:
        return len(got) >= 1000

    await until(all_in, 10, "1000 messages at the subscriber")
    await nc.close()
    assert sorted({s for s, _ in got}) == [f"{prefix}.reading.C-1", f"{prefix}.reading.C-2"]
    assert [json.loads(p)["seq"] for s, p in got if s.endswith("C-1")] == list(range(500))


async def test_a_server_stopped_mid_batch_fails_it_and_the_next_write_reconnects(
    tmp_path: Path,
) -> None:
    with NatsServer(tmp_path) as server:
        out = sink(
            url=server.url, subject="mid.{sensor_id}", stream="MID", create=True, max_inflight=64
        )
        await out.open()
        watcher = await nats.connect(server.url, max_reconnect_attempts=0)
        wjs = watcher.jetstream()
        writing = asyncio.create_task(out.write(batch_of(["M-1", "M-2"], 50_000)))

        async def some_stored() -> bool:
            return (await wjs.stream_info("MID")).state.messages >= 1000

        await until(some_stored, 10, "1000 messages stored")
        assert not writing.done()  # mid-batch: far from its 100,000 PubAcks
        await watcher.close()
        server.stop()
        with pytest.raises(SinkError):
            await asyncio.wait_for(writing, 5)
        server.start()
        await out.write(batch_of(["M-3"], 10))  # a fresh connection; the stream survived
        await out.close()
        assert out.ctx.gauge()["connects"] == 2
        checker = await nats.connect(server.url, max_reconnect_attempts=0)
        cjs = checker.jetstream()
        last = await cjs.get_last_msg("MID", "mid.M-3")
        assert last.data is not None and json.loads(last.data)["seq"] == 9
        await checker.close()


async def test_a_server_down_at_open_fails_writes_at_once() -> None:
    out = sink(url=f"nats://127.0.0.1:{free_port()}", connect_timeout_s=2.0)
    await out.open()  # logged, not raised
    began = time.monotonic()
    with pytest.raises(SinkError, match="cannot connect"):
        await out.write(batch_of(["N-1"], 3))
    assert time.monotonic() - began < 2.0  # refused, not timed out
    await out.close()
