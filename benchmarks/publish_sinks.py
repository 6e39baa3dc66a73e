"""The publish sinks alone against the machine's brokers: messages a second (not a test).

    .venv/bin/python -m benchmarks.publish_sinks [--records N] [--batch N] [--rounds N]
                                                 [--sinks mqtt,nats,nats-core] [--drivers]

Each round writes `--records` readings (100 sensors, `--batch` readings a batch, one message
each) through a sink's `write()` as the guarded sink calls it — every batch acknowledged before
the next: PUBACKs (mqtt, QoS 1), PubAcks (nats, JetStream) or a flush (nats-core) — and reports
messages a second, wall time and the event loop's CPU time a message. The batches are encoded
inside `write()` (the daemon would have the encoder child do it: slightly faster). Mosquitto on
127.0.0.1:1883 and nats-server on 127.0.0.1:4222; topics and the stream are unique per run, the
stream is deleted after it.

`--drivers` compares the two ways of running paho under asyncio for one 10,000-message batch:
the sink's own (`daemon/sinks/mqtt/connection.py`: paho's socket callbacks on loop readers and
writers) against paho's `loop_start()` thread with the loop woken by `call_soon_threadsafe`
when the window has room and when the batch is acknowledged; both keep the same window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import nats
import numpy as np
import paho.mqtt.client as mqtt
import uvloop
from paho.mqtt.enums import CallbackAPIVersion

from daemon.batch import Batch
from daemon.components import Sink
from daemon.runtime import ComponentContext
from daemon.sinks.mqtt import MqttConfig, MqttSink
from daemon.sinks.mqtt.connection import Connection
from daemon.sinks.mqtt.sink import ESCAPE
from daemon.sinks.nats import NatsSink, NatsSinkConfig
from daemon.sinks.publish import Addresses, messages

MQTT_URL = "mqtt://127.0.0.1:1883"
NATS_URL = "nats://127.0.0.1:4222"
SENSORS = 100
WINDOW = 1000  # max_inflight, the sinks' default


def make_batches(records: int, size: int) -> Iterator[Batch]:
    ids = np.array([f"B{i:03d}" for i in range(SENSORS)])
    for start in range(0, records, size):
        n = min(size, records - start)
        rows = np.arange(start, start + n)
        sensor_ids = ids[rows % SENSORS]
        parts = [
            Batch.of_sensor(
                s,
                rows[sensor_ids == s] // SENSORS,
                1.7e9 + rows[sensor_ids == s],
                np.sin(rows[sensor_ids == s] / 7.0),
                unit="degC",
            )
            for s in np.unique(sensor_ids)
        ]
        yield Batch.concat(parts)


def make_sink(kind: str, tag: str) -> Sink[Any]:
    ctx = ComponentContext.standalone("sinks[0]", "sink")
    if kind == "mqtt":
        return MqttSink(MqttConfig(url=MQTT_URL, topic=f"bench/{tag}/{{kind}}/{{sensor_id}}"), ctx)
    subject = f"bench{tag}.{{kind}}.{{sensor_id}}"
    if kind == "nats":
        config = NatsSinkConfig(url=NATS_URL, subject=subject, stream=f"BENCH{tag}", create=True)
    else:
        config = NatsSinkConfig(url=NATS_URL, subject=subject, jetstream=False)
    return NatsSink(config, ctx)


async def delete_stream(name: str) -> None:
    nc = await nats.connect(NATS_URL, max_reconnect_attempts=0)
    try:
        await nc.jetstream().delete_stream(name)
    finally:
        await nc.close()


async def one_run(kind: str, batches: list[Batch]) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    sink = make_sink(kind, tag)
    await sink.open()
    records = sum(len(b) for b in batches)
    try:
        wall, cpu = time.perf_counter(), time.thread_time()
        for batch in batches:
            await sink.write(batch)
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    finally:
        await sink.close()
        if kind == "nats":
            await delete_stream(f"BENCH{tag}")
    return {
        "sink": kind,
        "messages": records,
        "messages_per_s": round(records / wall),
        "wall_s": round(wall, 3),
        "loop_cpu_us_per_message": round(cpu / records * 1e6, 2),
    }


# -- the driver comparison ------------------------------------------------------------------


async def loop_driven(batch: list[tuple[str, bytes]]) -> float:
    connection = Connection(MqttConfig(url=MQTT_URL, max_inflight=WINDOW), "bench-loop")
    await connection.connect()
    began = time.perf_counter()
    await connection.publish(batch)
    wall = time.perf_counter() - began
    await connection.close()
    return wall


async def threaded(batch: list[tuple[str, bytes]]) -> float:
    """paho's own network thread; the loop publishes while the window has room."""
    loop = asyncio.get_running_loop()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-thread")
    client.max_inflight_messages_set(0)  # the same own window as the sink
    connected = loop.create_future()

    def on_connect(c: Any, u: Any, f: Any, rc: Any, p: Any) -> None:
        loop.call_soon_threadsafe(connected.set_result, 1)

    client.on_connect = on_connect
    lock, room, done = threading.Lock(), asyncio.Event(), loop.create_future()
    state = {"sent": 0, "acked": 0}

    def on_publish(c: Any, u: Any, mid: int, rc: Any, p: Any) -> None:
        with lock:
            state["acked"] += 1
            acked, in_flight = state["acked"], state["sent"] - state["acked"]
        if acked == len(batch):
            loop.call_soon_threadsafe(done.set_result, None)
        elif in_flight == WINDOW // 2:
            loop.call_soon_threadsafe(room.set)

    client.on_publish = on_publish
    await asyncio.to_thread(client.connect, "127.0.0.1", 1883, 30)
    client.loop_start()
    await connected
    began = time.perf_counter()
    while not done.done():
        room.clear()
        with lock:
            can = min(len(batch) - state["sent"], WINDOW - (state["sent"] - state["acked"]))
        for topic, payload in batch[state["sent"] : state["sent"] + can]:
            client.publish(topic, payload, qos=1)
            with lock:
                state["sent"] += 1
        if state["sent"] == len(batch):
            await done
        else:
            await asyncio.wait(
                [asyncio.ensure_future(room.wait()), done],
                timeout=1.0,
                return_when=asyncio.FIRST_COMPLETED,
            )
    wall = time.perf_counter() - began
    client.disconnect()
    client.loop_stop()
    return wall


def drivers(rounds: int) -> None:
    tag = uuid.uuid4().hex[:8]
    (batch,) = make_batches(10_000, 10_000)
    pairs = messages(batch, Addresses(f"bench/{tag}/{{sensor_id}}", ESCAPE))
    walls: dict[str, list[float]] = {"loop_driven": [], "paho_thread": []}
    for _ in range(rounds):  # alternating, so a busy moment hits both
        walls["loop_driven"].append(uvloop.run(loop_driven(pairs)))
        walls["paho_thread"].append(uvloop.run(threaded(pairs)))
    for name, runs in walls.items():
        wall = statistics.median(runs)
        print(
            json.dumps(
                {
                    "driver": name,
                    "messages": len(pairs),
                    "median_of": rounds,
                    "messages_per_s": round(len(pairs) / wall),
                    "wall_s": round(wall, 3),
                }
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000, help="readings a batch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sinks", default="mqtt,nats,nats-core")
    parser.add_argument("--drivers", action="store_true", help="the paho driver comparison")
    args = parser.parse_args()
    if args.drivers:
        drivers(args.rounds)
        return
    batches = list(make_batches(args.records, args.batch))
    for kind in args.sinks.split(","):
        runs = [uvloop.run(one_run(kind, batches)) for _ in range(args.rounds)]
        for run in runs:
            print(json.dumps(run))
        rates = [r["messages_per_s"] for r in runs]
        print(
            json.dumps(
                {
                    "sink": kind,
                    "median_of": len(runs),
                    "messages_per_s": round(statistics.median(rates)),
                    "min": min(rates),
                    "max": max(rates),
                }
            )
        )


if __name__ == "__main__":
    main()
