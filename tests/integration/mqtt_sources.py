"""Driving the `mqtt` source against a real broker as the pipeline does, for the tests in
test_mqtt_source*.py: `Sources` opens them (closed, and their sessions on the machine's
broker forgotten, at teardown), `Driven` runs a stream with `checkpoint`/`taken`."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from daemon.sources.mqtt import MqttSource, MqttSourceConfig
from tests.brokers.mosquitto import forget_session, publish
from tests.driven import Driven
from tests.support import TestContext

SHARED_PORT = 1883


def reading(sensor: str, seq: int, value: float = 21.5, **more: Any) -> bytes:
    return json.dumps({"sensor_id": sensor, "seq": seq, "value": value, **more}).encode()


class Sources:
    """The sources a test opens, on their topic, closed at teardown."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.tag = uuid.uuid4().hex[:10]
        self.topic = f"ingestd-test/{self.tag}"
        self.opened: list[tuple[MqttSource, Driven | None]] = []
        self.shared_ids: set[str] = set()  # client ids whose sessions live on the shared broker

    async def open(
        self, port: int = SHARED_PORT, *, drive: bool = True, auto_take: bool = True, **keys: Any
    ) -> tuple[MqttSource, Driven | None, TestContext]:
        config = MqttSourceConfig(
            topics=keys.pop("topics", (f"{self.topic}/#",)),
            url=f"mqtt://127.0.0.1:{port}",
            client_id=keys.pop("client_id", f"ingestd-test-{self.tag}"),
            reconnect_max_s=keys.pop("reconnect_max_s", 0.5),
            **keys,
        )
        if port == SHARED_PORT:
            self.shared_ids.add(config.client_id)
        ctx = TestContext("sources[0]", dead_letter=str(self.tmp_path / "dead-letter.jsonl"))
        src = MqttSource(config, ctx)
        await src.open()
        await until(lambda: bool(ctx.state.gauges["sources[0]"].get("connected")))
        driven = Driven(src, auto_take=auto_take, marked=True) if drive else None
        self.opened.append((src, driven))
        return src, driven, ctx

    async def close(self, src: MqttSource) -> None:
        for i, (s, driven) in enumerate(self.opened):
            if s is src:
                del self.opened[i]
                if driven is not None:
                    driven.task.cancel()
                    await asyncio.gather(driven.task, return_exceptions=True)
                await src.close()
                return

    async def close_all(self) -> None:
        for src, _ in list(self.opened):
            await self.close(src)
        for client_id in self.shared_ids:  # leave no session behind on the machine's broker
            await asyncio.to_thread(forget_session, SHARED_PORT, client_id)


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait for `condition` (checked as the loop turns) for at most `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
async def sources(tmp_path: Path) -> AsyncIterator[Sources]:
    s = Sources(tmp_path)
    yield s
    await s.close_all()


def dead_letters(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "dead-letter.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def publish_async(port: int, messages: list[tuple[str, bytes | str]], qos: int = 1) -> int:
    return await asyncio.to_thread(publish, port, messages, qos=qos)
