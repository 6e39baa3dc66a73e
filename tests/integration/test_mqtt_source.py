"""The `mqtt` source against real Mosquitto brokers: the machine's on 1883 (a unique topic and
client id per test) and private ones (`tests/brokers/mosquitto.py`) for what restarts.

Acks are checked through the broker, never inferred from the client: a message whose PUBACK was
withheld comes back to the next connection of the same session, and one that was acknowledged
does not (a sentinel published afterwards is then the only thing that arrives)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
import structlog.testing

from benchmarks.mqtt_ingest import publish as publish_files
from benchmarks.mqtt_ingest import write_payloads
from daemon.sources.mqtt import MqttSource, MqttSourceConfig
from tests.brokers.mosquitto import Mosquitto, mosquitto, mosquitto_factory
from tests.integration.mqtt_sources import (
    SHARED_PORT,
    Sources,
    dead_letters,
    publish_async,
    reading,
    sources,
    until,
)
from tests.support import TestContext

__all__ = ["mosquitto", "mosquitto_factory", "sources"]  # fixtures, used by name

pytestmark = pytest.mark.server("mqtt")


# -- payloads ---------------------------------------------------------------------------------
async def test_every_malformed_payload_is_dead_lettered_with_reason_and_topic(
    sources: Sources, tmp_path: Path
) -> None:
    src, driven, ctx = await sources.open(max_payload_bytes=400)
    assert driven is not None
    t = sources.topic
    bad = [
        (f"{t}/big", b'{"sensor_id": "x", "seq": 1, "value": 1, "pad": "' + b"x" * 500 + b'"}'),
        (f"{t}/text", b"not json at all"),
        (f"{t}/binary", b"\xff\xfe\x00garbage"),
        (f"{t}/scalar", b"42"),
        (f"{t}/empty", b"[]"),
        (f"{t}/missing", b'{"sensor_id": "x", "seq": 1}'),
        (f"{t}/type", b'{"sensor_id": "x", "seq": 1, "value": "hot"}'),
        (f"{t}/nan", b'{"sensor_id": "x", "seq": 1, "value": NaN}'),
        (f"{t}/negative-seq", b'{"sensor_id": "x", "seq": -4, "value": 1.0}'),
    ]
    mixed = b'[{"sensor_id": "A", "seq": 1, "value": 1.5}, 7, {"sensor_id": "A", "seq": 2}]'
    good = [(f"{t}/mixed", mixed), (f"{t}/good", reading("B", 1))]
    await publish_async(SHARED_PORT, [*bad, *good])
    got = await driven.until(2)
    assert sorted(got) == [("A", 1), ("B", 1)]  # the good ones flowed, the mixed array's too
    await until(lambda: ctx.counters.rejected == len(bad) + 2)
    letters = dead_letters(tmp_path)
    by_topic = {d["topic"].rsplit("/", 1)[-1]: d for d in letters}
    assert set(by_topic) == {t.rsplit("/", 1)[-1] for t, _ in [*bad, good[0]]}
    assert all(d["source"] == "sources[0]" for d in letters)
    assert "exceeds max_payload_bytes (400)" in by_topic["big"]["reason"]
    assert by_topic["big"]["payload_bytes"] > 400
    assert "bad JSON" in by_topic["text"]["reason"]
    assert "bad JSON" in by_topic["binary"]["reason"]
    assert "not a JSON object or array" in by_topic["scalar"]["reason"]
    assert "empty array" in by_topic["empty"]["reason"]
    assert "'value'" in by_topic["missing"]["reason"]
    mixed_rejects = sorted(d["index"] for d in letters if d["topic"].endswith("/mixed"))
    assert mixed_rejects == [1, 2]  # each bad element its own entry, with its index
    assert ctx.counters.read == len(bad) + 2  # rejects count as read too
    # Everything was acknowledged, rejected-only messages included: a new connection of the
    # same session gets nothing back, only what is published after.
    await sources.close(src)
    _, again, _ = await sources.open()
    assert again is not None
    await publish_async(SHARED_PORT, [(f"{t}/sentinel", reading("S", 1))])
    assert await again.until(1) == [("S", 1)]


async def test_the_sensor_id_can_come_from_the_topic(sources: Sources) -> None:
    pattern = f"{sources.topic}/{{sensor_id}}/temp"
    _, driven, _ = await sources.open(sensor_id_from="topic", topic_pattern=pattern)
    assert driven is not None
    t = sources.topic
    await publish_async(
        SHARED_PORT,
        [(f"{t}/boiler-1/temp", b'{"seq": 5, "value": 80.5}'), (f"{t}/boiler-2/temp", b"[]")],
    )
    await publish_async(SHARED_PORT, [(f"{t}/boiler-3/temp", b'[{"seq": 1, "value": 1}]')])
    assert sorted(await driven.until(2)) == [("boiler-1", 5), ("boiler-3", 1)]


# -- acks -------------------------------------------------------------------------------------
async def test_acks_are_withheld_until_taken(sources: Sources) -> None:
    src, driven, ctx = await sources.open(auto_take=False)
    assert driven is not None
    t = sources.topic
    await publish_async(SHARED_PORT, [(f"{t}/a", reading("W", i)) for i in range(5)])
    assert sorted(await driven.until(5)) == [("W", i) for i in range(5)]
    assert ctx.state.gauges["sources[0]"]["unacked"] == 5
    await sources.close(src)  # nothing taken: no PUBACK went out

    src, driven, ctx = await sources.open()  # the same session: the broker sends them again
    assert driven is not None
    assert sorted(await driven.until(5)) == [("W", i) for i in range(5)]
    await until(lambda: ctx.state.gauges["sources[0]"]["unacked"] == 0)
    await sources.close(src)  # taken this time, and acknowledged

    _, driven, _ = await sources.open()
    assert driven is not None
    await publish_async(SHARED_PORT, [(f"{t}/a", reading("S", 1))])
    assert await driven.until(1) == [("S", 1)]


async def test_qos0_flows_with_nothing_to_acknowledge(sources: Sources) -> None:
    _, driven, ctx = await sources.open(qos=0, clean_start=True)
    assert driven is not None
    await publish_async(SHARED_PORT, [(f"{sources.topic}/z", reading("Z", 1))], qos=0)
    assert await driven.until(1) == [("Z", 1)]
    assert ctx.state.gauges["sources[0]"]["unacked"] == 0


# -- the connection ---------------------------------------------------------------------------
async def test_a_broker_that_comes_up_later_is_connected_to(
    mosquitto: Mosquitto, sources: Sources
) -> None:
    mosquitto.stop()
    with structlog.testing.capture_logs() as logs:
        config = MqttSourceConfig(
            topics=(f"{sources.topic}/#",),
            url=mosquitto.url,
            client_id=f"late-{sources.tag}",
            reconnect_max_s=0.2,
        )
        ctx = TestContext("sources[0]", dead_letter=str(sources.tmp_path / "dl.jsonl"))
        src = MqttSource(config, ctx)
        await src.open()  # does not wait for, or fail on, a broker that is down
        try:
            await until(lambda: sum(e["event"] == "source_reconnecting" for e in logs) >= 2)
            mosquitto.start()
            gauges = ctx.state.gauges["sources[0]"]
            await until(lambda: bool(gauges["connected"]))
        finally:
            await src.close()
    retries = [e for e in logs if e["event"] == "source_reconnecting"]
    assert all(e["retry_in_s"] <= 0.2 and "Connection refused" in e["error"] for e in retries)
    assert [e["attempt"] for e in retries[:2]] == [1, 2]
    assert any(e["event"] == "source_connected" for e in logs)


async def test_a_broker_restart_loses_nothing_at_qos1(
    mosquitto: Mosquitto, sources: Sources
) -> None:
    """Held (unacknowledged) messages survive a broker restart in the session; the copies the
    broker resends are dropped, the held ones acknowledged on the new connection, and what is
    published after the restart arrives too."""
    t = sources.topic
    with structlog.testing.capture_logs() as logs:
        src, driven, ctx = await sources.open(mosquitto.port, auto_take=False)
        assert driven is not None
        await publish_async(mosquitto.port, [(f"{t}/a", reading("R", i)) for i in range(300)])
        await driven.until(300)
        gauges = ctx.state.gauges["sources[0]"]
        assert gauges["unacked"] == 300
        await asyncio.to_thread(mosquitto.restart)
        await until(lambda: gauges["reconnects"] >= 1 and bool(gauges["connected"]))
        await until(lambda: gauges["resent_dropped"] == 300)  # every held one came back once
        driven.take_all()  # their PUBACKs go out on the new connection, same session
        await until(lambda: gauges["unacked"] == 0)
        await publish_async(mosquitto.port, [(f"{t}/b", reading("R", i)) for i in range(300, 400)])
        got = await driven.until(400)
        driven.take_all()
        await until(lambda: gauges["unacked"] == 0)
    assert sorted(got) == [("R", i) for i in range(400)]  # none lost, none twice
    events = [e["event"] for e in logs]
    assert "source_disconnected" in events and "source_reconnecting" in events
    reconnected = [e for e in logs if e["event"] == "source_connected"][-1]
    assert reconnected["session_present"] is True and reconnected["unacked"] == 300
    await sources.close(src)
    # all acknowledged: a new connection of the session gets only what comes next
    _, again, _ = await sources.open(mosquitto.port)
    assert again is not None
    await publish_async(mosquitto.port, [(f"{t}/c", reading("S", 1))])
    assert await again.until(1) == [("S", 1)]


async def test_a_lost_session_drops_the_old_acks(
    mosquitto_factory: Callable[..., Mosquitto], sources: Sources
) -> None:
    """A broker that forgot the session (no persistence) reuses the old packet ids for new
    messages: acks of the old session must not be sent, or they would acknowledge those."""
    broker = mosquitto_factory(tuned=True, extra={"persistence": "false"})
    t = sources.topic
    src, driven, ctx = await sources.open(broker.port, auto_take=False)
    assert driven is not None
    await publish_async(broker.port, [(f"{t}/a", reading("L", i)) for i in range(3)])
    await driven.until(3)
    old_marks, driven.marks = driven.marks, []
    await asyncio.to_thread(broker.restart)
    gauges = ctx.state.gauges["sources[0]"]
    await until(lambda: gauges["reconnects"] >= 1 and bool(gauges["connected"]))
    assert gauges["unacked"] == 0  # a new session holds nothing
    await publish_async(broker.port, [(f"{t}/b", reading("L", i)) for i in range(3, 6)])
    await driven.until(6)
    assert gauges["unacked"] == 3  # the new ones, under packet ids the old ones had
    for mark in old_marks:
        src.taken(mark)  # the old session's: dropped, not sent
    assert gauges["unacked"] == 3
    await sources.close(src)
    src, again, _ = await sources.open(broker.port, auto_take=True)
    assert again is not None  # the new three were not acknowledged by the stale acks
    assert sorted(await again.until(3)) == [("L", i) for i in range(3, 6)]


async def test_one_packet_id_in_flight_twice_is_two_messages(
    mosquitto: Mosquitto, sources: Sources
) -> None:
    """Mosquitto 2.0.11 moves up to Receive Maximum queued messages into flight on one PUBACK,
    so past 65,535 outstanding its packet ids repeat in flight. Both copies of an id are
    distinct messages: both are delivered and both acknowledged, none stuck at the broker."""
    messages = 70_000
    files = write_payloads(sources.tmp_path, messages, 1)
    src, driven, ctx = await sources.open(mosquitto.port, auto_take=False)
    assert driven is not None
    gauges = ctx.state.gauges["sources[0]"]
    await asyncio.to_thread(publish_files, mosquitto.port, f"{sources.topic}/n", files)
    await driven.until(65_535)  # the whole window, nothing acknowledged yet
    assert gauges["unacked"] == 65_535
    src.taken(driven.marks.pop(0))  # one group's PUBACKs: the broker sends all the rest
    got = await driven.until(messages)
    assert len(set(got)) == messages  # the repeated ids were new messages, none dropped
    assert gauges["resent_dropped"] == 0
    driven.take_all()
    await until(lambda: gauges["unacked"] == 0)
    await sources.close(src)
    _, again, _ = await sources.open(mosquitto.port)  # nothing left in flight at the broker
    assert again is not None
    await publish_async(mosquitto.port, [(f"{sources.topic}/c", reading("S", 1))])
    assert await again.until(1) == [("S", 1)]
