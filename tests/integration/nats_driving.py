"""Driving a `nats` source in a test as the pipeline drives it, and asking the server what it
acknowledged: what both the source tests and the restart tests need."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from nats.aio.client import Client

from daemon.sources.nats import NatsConfig, NatsSource
from tests.driven import Driven
from tests.support import TestContext

URL = "nats://127.0.0.1:4222"


async def ack_pending(nc: Client, stream: str, durable: str) -> int:
    info = await nc.jetstream().consumer_info(stream, durable)
    return int(info.num_ack_pending or 0)


async def settled(nc: Client, stream: str, durable: str, within_s: float = 10.0) -> None:
    """Every message of the stream delivered and acked, as the server sees it."""
    deadline = time.monotonic() + within_s
    while True:
        info = await nc.jetstream().consumer_info(stream, durable)
        if not info.num_ack_pending and not info.num_pending:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not settled: {info.num_ack_pending=} {info.num_pending=}")
        await asyncio.sleep(0.02)


def config(stream: str, url: str = URL, **keys: Any) -> NatsConfig:
    base: dict[str, Any] = {"subjects": (f"{stream.lower()}.>",), "durable": "d"}
    return NatsConfig(stream=stream, url=url, **(base | keys))


def context(tmp_path: Path, label: str = "sources[0]") -> TestContext:
    return TestContext(label, str(tmp_path / "dead-letter.jsonl"))


def dead_letters(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "dead-letter.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def started(cfg: NatsConfig, ctx: TestContext, *, auto_take: bool = True) -> Driven:
    src = NatsSource(cfg, ctx)
    await src.open()
    return Driven(src, auto_take=auto_take)
