"""The `nats` source against a private nats-server (tests/brokers/nats.py) that is down at start,
restarted mid-stream, or never comes: what must not touch the machine's server."""

from __future__ import annotations

import time
from pathlib import Path

import nats
import structlog.testing

from daemon.sources.nats import NatsSource
from tests.brokers.nats import NatsServer, connect, publish_all, reading
from tests.driven import Driven, wait_until
from tests.integration.nats_driving import config, context, settled, started


async def test_a_server_down_at_start_is_waited_for(tmp_path: Path) -> None:
    server = NatsServer(tmp_path)
    server.stop()
    try:
        ctx = context(tmp_path)
        cfg = config("DOWN", url=server.url, connect_timeout_s=0.5, reconnect_wait_s=0.1)
        src = NatsSource(cfg, ctx)
        began = time.monotonic()
        with structlog.testing.capture_logs() as logs:
            await src.open()
            assert time.monotonic() - began < 2.0  # open() does not wait for the server
            assert any(e["event"] == "source_failed" for e in logs)
            driven = Driven(src)
            server.start()
            await wait_until(lambda: any(e["event"] == "source_bound" for e in logs), 10)
        nc = await connect(server.url)
        try:
            await publish_all(nc.jetstream(), [("down.x", reading("D", s)) for s in range(10)])
            await driven.until_true(lambda: len(driven.readings) == 10)
            await settled(nc, "DOWN", "d")
        finally:
            await nc.close()
        await driven.stop(ctx)
    finally:
        server.stop()


async def test_a_server_restart_mid_stream_loses_nothing(tmp_path: Path) -> None:
    with NatsServer(tmp_path) as server:
        ctx = context(tmp_path)
        cfg = config("RESTART", url=server.url, reconnect_wait_s=0.1, batch=100)
        with structlog.testing.capture_logs() as logs:
            driven = await started(cfg, ctx)
            nc = await nats.connect(server.url, reconnect_time_wait=0.1, max_reconnect_attempts=-1)
            try:
                js = nc.jetstream()
                await publish_all(js, [("restart.x", reading("R", s)) for s in range(1000)])
                await driven.until_true(lambda: len(driven.readings) >= 300)
                server.restart()
                await wait_until(lambda: ctx.state.gauges["sources[0]"]["reconnects"] >= 1, 15)
                await publish_all(js, [("restart.x", reading("R", s)) for s in range(1000, 2000)])
                await driven.until_true(lambda: len(set(driven.readings)) == 2000, 40)
                await settled(nc, "RESTART", "d", within_s=40)
            finally:
                await nc.close()
            await driven.stop(ctx)
    assert set(driven.readings) == {("R", s) for s in range(2000)}
    names = [e["event"] for e in logs]
    assert "source_disconnected" in names
    assert any(e["event"] == "source_connected" and e["reconnect"] for e in logs)


async def test_a_stop_while_the_server_is_down_ends_at_once(tmp_path: Path) -> None:
    server = NatsServer(tmp_path)
    server.stop()
    ctx = context(tmp_path)
    cfg = config("NEVER", url=server.url, connect_timeout_s=0.2, reconnect_wait_s=0.1)
    src = NatsSource(cfg, ctx)
    await src.open()
    driven = Driven(src)
    began = time.monotonic()
    await driven.stop(ctx)  # the stream ends, close() gives up connecting
    assert time.monotonic() - began < 1.0
    assert not ctx.state.gauges["sources[0]"]["connected"]
