"""The `nats` source against the machine's server on 4222 (unique streams, deleted after): bad
payloads, acks, idle latency, stop, subjects, sharing, binding. Acks are checked on the server
(`num_ack_pending`), never inferred from the client. Restarts: test_nats_source_restarts.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog.testing
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from daemon.sources.nats import NatsBindError, NatsConfig, NatsSource
from tests.brokers.nats import connect, delete_stream, publish_all, reading, unique_name
from tests.driven import wait_until
from tests.integration.nats_driving import (
    URL,
    ack_pending,
    config,
    context,
    dead_letters,
    settled,
    started,
)

pytestmark = pytest.mark.server("nats")


@pytest.fixture
async def nc() -> AsyncIterator[Client]:
    client = await connect(URL)
    yield client
    await client.close()


@pytest.fixture
async def stream() -> AsyncIterator[str]:
    name = unique_name()
    yield name
    await delete_stream(URL, name)


async def test_good_readings_flow_bad_ones_are_dead_lettered_and_all_are_acked(
    tmp_path: Path, nc: Client, stream: str
) -> None:
    ctx = context(tmp_path)
    driven = await started(config(stream, max_payload_bytes=1000), ctx)
    js, subj = nc.jetstream(), stream.lower()
    bad = [
        (f"{subj}.json", b"{not json"),
        (f"{subj}.big", reading("big", 1, pad="x" * 2000)),
        (f"{subj}.type", b'{"sensor_id": "t", "seq": 1, "value": "warm"}'),
        (f"{subj}.nan", b'{"sensor_id": "n", "seq": 1, "value": "NaN"}'),
        (f"{subj}.missing", b'{"sensor_id": "m", "seq": 1}'),
        (f"{subj}.scalar", b"42"),
        (f"{subj}.empty", b"[]"),
        (f"{subj}.array", b'[{"sensor_id": "A", "seq": 1, "value": 2.5}, {"seq": 2}]'),
    ]
    good = [(f"{subj}.g", reading("G", seq, seq * 0.5)) for seq in range(50)]
    await publish_all(js, [*good[:25], *bad, *good[25:]])
    await driven.until_true(lambda: len(driven.readings) >= 51)
    await settled(nc, stream, "d")
    await driven.stop(ctx)

    assert sorted(driven.readings) == sorted([("A", 1)] + [("G", s) for s in range(50)])
    letters = {d["subject"].rsplit(".", 1)[-1]: d for d in dead_letters(tmp_path)}
    assert set(letters) == {"json", "big", "type", "nan", "missing", "scalar", "empty", "array"}
    assert letters["big"]["reason"].startswith("payload of ")
    assert "bad JSON" in letters["json"]["reason"]
    assert "missing field 'value'" in letters["missing"]["reason"]
    assert letters["array"]["index"] == 1
    assert all(d["source"] == "sources[0]" for d in letters.values())
    assert ctx.counters.rejected == 8 and ctx.counters.read == 8  # the pump counts the good
    gauge = ctx.state.gauges["sources[0]"]
    assert (gauge["messages"], gauge["acked"], gauge["unacked"]) == (58, 58, 0)


async def test_acks_wait_for_taken_and_an_untaken_message_is_redelivered(
    tmp_path: Path, nc: Client, stream: str
) -> None:
    ctx = context(tmp_path)
    cfg = config(stream, ack_wait_s=0.5)
    driven = await started(cfg, ctx, auto_take=False)
    await publish_all(nc.jetstream(), [(f"{stream.lower()}.a", reading("W", s)) for s in range(20)])
    await driven.until_true(lambda: len(driven.readings) == 20)
    assert await ack_pending(nc, stream, "d") == 20  # yielded, not taken: nothing acked
    await driven.stop(ctx)  # closed without taking: a crash, as far as acks go

    again = context(tmp_path, "sources[1]")
    redelivered = await started(cfg, again, auto_take=False)
    await redelivered.until_true(lambda: len(redelivered.readings) == 20)  # after ack_wait_s
    assert sorted(redelivered.readings) == [("W", s) for s in range(20)]
    redelivered.take_all()
    await settled(nc, stream, "d")
    await redelivered.stop(again)


async def test_a_lone_message_is_not_held_waiting_for_company(
    tmp_path: Path, nc: Client, stream: str
) -> None:
    ctx = context(tmp_path)
    driven = await started(config(stream, batch=1000), ctx)
    js = nc.jetstream()
    delays = []
    for seq in range(5):
        await wait_until(lambda: ctx.state.gauges["sources[0]"]["messages"] == seq, 5)  # noqa: B023
        await asyncio.sleep(0.05)  # let it go idle: this is the case under test
        sent = time.monotonic()
        await js.publish(f"{stream.lower()}.x", reading("L", seq))
        await driven.until_true(lambda: len(driven.readings) == seq + 1)  # noqa: B023
        delays.append(driven.arrived[-1] - sent)
    await driven.stop(ctx)
    # a lingering fetch for 1000 would hold each for its whole timeout (1 s); the cap is the
    # 5 ms linger plus a round trip, so 100 ms leaves a slow CI machine plenty
    assert max(delays) < 0.1, delays


async def test_stop_ends_an_idle_stream_at_once(tmp_path: Path, stream: str) -> None:
    ctx = context(tmp_path)
    driven = await started(config(stream), ctx)
    await asyncio.sleep(0.1)  # idle: the lingering fetch is out
    began = time.monotonic()
    await driven.stop(ctx)
    assert time.monotonic() - began < 0.5


async def test_subject_gives_the_sensor_id(tmp_path: Path, nc: Client, stream: str) -> None:
    ctx = context(tmp_path)
    subj = stream.lower()
    cfg = config(stream, sensor_id_from="topic", topic_pattern=f"{subj}.*.{{sensor_id}}")
    driven = await started(cfg, ctx)
    await publish_all(
        nc.jetstream(),
        [
            (f"{subj}.plant1.T7", b'{"seq": 3, "value": 21.5, "unit": "C"}'),
            (f"{subj}.T8", b'{"seq": 4, "value": 1}'),  # too short for the pattern
        ],
    )
    await driven.until_true(lambda: len(driven.readings) == 1)
    await settled(nc, stream, "d")
    await driven.stop(ctx)
    assert driven.readings == [("T7", 3)]
    [letter] = dead_letters(tmp_path)
    assert letter["subject"] == f"{subj}.T8" and "gives no sensor_id" in letter["reason"]


async def test_two_sources_on_one_durable_share_the_stream(
    tmp_path: Path, nc: Client, stream: str
) -> None:
    cfg = config(stream, batch=50)
    ctx_a, ctx_b = context(tmp_path, "sources[0]"), context(tmp_path, "sources[1]")
    a, b = await started(cfg, ctx_a), await started(cfg, ctx_b)
    n = 4000
    await publish_all(nc.jetstream(), [(f"{stream.lower()}.s", reading("S", i)) for i in range(n)])
    await wait_until(lambda: len(a.readings) + len(b.readings) >= n, 20)
    await settled(nc, stream, "d")
    await a.stop(ctx_a)
    await b.stop(ctx_b)
    union = a.readings + b.readings
    assert len(union) == n and set(union) == {("S", i) for i in range(n)}  # none twice
    assert a.readings and b.readings, (len(a.readings), len(b.readings))


async def test_binding_refuses_what_cannot_work_naming_the_key(
    tmp_path: Path, nc: Client, stream: str
) -> None:
    js = nc.jetstream()
    with pytest.raises(NatsBindError) as missing:
        await NatsSource(config(stream, create=False), context(tmp_path)).open()
    assert missing.value.key == "stream"

    await js.add_stream(StreamConfig(name=stream, subjects=[f"{stream.lower()}.a"]))
    with pytest.raises(NatsBindError) as uncovered:
        await NatsSource(config(stream), context(tmp_path)).open()
    assert uncovered.value.key == "subjects" and "captures" in uncovered.value.reason

    cfg = config(stream, subjects=(f"{stream.lower()}.a",), create=False)
    with pytest.raises(NatsBindError) as no_consumer:
        await NatsSource(cfg, context(tmp_path)).open()
    assert no_consumer.value.key == "durable"

    await js.add_consumer(stream, ConsumerConfig(durable_name="all", ack_policy=AckPolicy.ALL))
    with pytest.raises(NatsBindError) as ack_all:
        await NatsSource(NatsConfig(stream=stream, durable="all"), context(tmp_path)).open()
    assert ack_all.value.key == "durable" and "explicit" in ack_all.value.reason


async def test_a_differing_consumer_is_updated_or_refused(
    tmp_path: Path, nc: Client, stream: str
) -> None:
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{stream.lower()}.>"]))
    await js.add_consumer(stream, ConsumerConfig(durable_name="d", max_ack_pending=100))

    refused = NatsSource(config(stream, create=False, max_ack_pending=5000), context(tmp_path))
    with pytest.raises(NatsBindError) as differs:
        await refused.open()
    assert differs.value.key == "max_ack_pending"
    assert "has 100, the config says 5000" in differs.value.reason
    await refused.close()

    updating = NatsSource(config(stream, max_ack_pending=5000, ack_wait_s=7), context(tmp_path))
    with structlog.testing.capture_logs() as logs:
        await updating.open()
    await updating.close()
    info = await js.consumer_info(stream, "d")
    assert (info.config.max_ack_pending, info.config.ack_wait) == (5000, 7.0)
    [updated] = [e for e in logs if e["event"] == "source_consumer_updated"]
    assert updated["changed"]["max_ack_pending"] == {"was": 100, "now": 5000}


async def test_a_consumer_deleted_under_a_running_source_is_created_again(
    tmp_path: Path, nc: Client, stream: str
) -> None:
    ctx = context(tmp_path)
    driven = await started(config(stream), ctx)
    js, subj = nc.jetstream(), stream.lower()
    await publish_all(js, [(f"{subj}.a", reading("C", s)) for s in range(10)])
    await driven.until_true(lambda: len(driven.readings) == 10)
    await settled(nc, stream, "d")
    with structlog.testing.capture_logs() as logs:
        await js.delete_consumer(stream, "d")
        await wait_until(lambda: any(e["event"] == "source_consumer_created" for e in logs), 10)
    # created again: it starts from the stream's beginning (deliver all), so the first ten come
    # again (at-least-once: a duplicate, never a loss) and the new ones after them
    await publish_all(js, [(f"{subj}.a", reading("C", s)) for s in range(10, 20)])
    await driven.until_true(lambda: {s for _, s in driven.readings} >= set(range(20)))
    await settled(nc, stream, "d")
    await driven.stop(ctx)
    assert any(e["event"] == "source_failed" for e in logs)
