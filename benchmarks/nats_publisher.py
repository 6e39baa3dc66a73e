"""What the NATS benchmark publishes: a pre-filled stream (for rates) and a paced fleet (for
latency), each reading stamped `ts = now` as it is published.

Why the paced publisher is a process of its own (`python -m benchmarks.nats_publisher`): it
must keep its schedule (10,000 sensors x 1 Hz is a message every 100 us) without sharing a GIL
with the harness, and it reports how late it ran, so a publisher that could not keep up is seen
instead of being mistaken for daemon latency. It publishes with core NATS (the stream stores
what arrives on its subjects), as a fleet of sensors would; the pre-fill uses JetStream
publishes, each confirmed stored, so a rate run starts from a known backlog.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import nats
import orjson
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig

TICK_S = 0.01  # the paced publisher sends a tick's worth of sensors every 10 ms


def fleet_message(sensor: int, seq: int, ts: float, per_message: int = 1) -> bytes:
    """One sensor's reading (or `per_message` consecutive ones, as a JSON array)."""
    if per_message == 1:
        return orjson.dumps({"sensor_id": f"B{sensor}", "seq": seq, "ts": ts, "value": 20.0})
    return orjson.dumps(
        [
            {"sensor_id": f"B{sensor}", "seq": seq + k, "ts": ts, "value": 20.0 + k % 7}
            for k in range(per_message)
        ]
    )


async def create_stream(js: JetStreamContext, stream: str, subject: str) -> None:
    await js.add_stream(
        StreamConfig(name=stream, subjects=[f"{subject}.>"], storage=StorageType.FILE)
    )


async def prefill(
    url: str, stream: str, subject: str, readings: int, *, per_message: int, sensors: int = 1000
) -> float:
    """A new stream holding `readings` readings in messages of `per_message`; seconds taken."""
    nc = await nats.connect(url)
    began = time.perf_counter()
    try:
        js = nc.jetstream(timeout=30)
        await create_stream(js, stream, subject)
        messages = readings // per_message
        ts = time.time()
        window: list[asyncio.Future[object]] = []
        for i in range(messages):
            sensor, round_ = i % sensors, i // sensors
            payload = fleet_message(sensor, round_ * per_message, ts, per_message)
            window.append(asyncio.ensure_future(js.publish(f"{subject}.{sensor}", payload)))
            if len(window) >= 256:
                await asyncio.gather(*window)
                window = []
        await asyncio.gather(*window)
    finally:
        await nc.close()
    return time.perf_counter() - began


async def paced(
    url: str, subject: str, sensors: int, rate_hz: float, seconds: float
) -> dict[str, Any]:
    """`sensors` each publishing at `rate_hz` for `seconds`, spread evenly over each second."""
    nc = await nats.connect(url)
    per_tick = sensors * rate_hz * TICK_S
    ticks = round(seconds / TICK_S)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    sent, owed, worst_late = 0, 0.0, 0.0
    try:
        for tick in range(ticks):
            due = start + tick * TICK_S
            late = loop.time() - due
            if late < 0:
                await asyncio.sleep(-late)
            else:
                worst_late = max(worst_late, late)
            owed += per_tick
            count, owed = int(owed), owed - int(owed)
            for _ in range(count):
                sensor, seq = sent % sensors, sent // sensors
                await nc.publish(f"{subject}.{sensor}", fleet_message(sensor, seq, time.time()))
                sent += 1
        await nc.flush(timeout=10)
    finally:
        await nc.close()
    elapsed = loop.time() - start
    return {
        "published": sent,
        "seconds": round(elapsed, 3),
        "rate": round(sent / elapsed, 1),
        "worst_late_ms": round(worst_late * 1e3, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="nats://127.0.0.1:4222")
    parser.add_argument("--subject", required=True)
    parser.add_argument("--sensors", type=int, default=10_000)
    parser.add_argument("--rate-hz", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    result = asyncio.run(paced(args.url, args.subject, args.sensors, args.rate_hz, args.seconds))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
