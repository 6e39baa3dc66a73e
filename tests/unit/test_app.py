"""The supervisor, driven directly in this process: exit requests, reloads and their mixtures.

Each test runs `Daemon.serve()` on the test's loop with the daemon's log written to a file in
tmp_path, then reads the JSON events back: the daemon's own account of what it did. Signals
are delivered as the loop's handlers receive them (`handle_exit` / `handle_reload`, or a real
`os.kill` to this process while the daemon's handlers are installed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from daemon.app import Daemon
from daemon.batch import Batch
from daemon.components import Sink
from daemon.config import load_config
from daemon.topology.pipeline import Pipeline

SLOW_SINK = """
[[sinks]]
type = "blackhole"
max_per_s = {max_per_s}
spool_dir = "{tmp}/spool"
"""


@dataclass(frozen=True)
class HangingConfig:
    pass


class HangingSink(Sink[HangingConfig], name="test_hanging_open"):
    """A sink whose server never answers: `open()` waits forever (until cancelled)."""

    async def open(self) -> None:
        await asyncio.Event().wait()

    async def write(self, batch: Batch) -> None:
        raise AssertionError("never opened, never written")


def write_config(
    tmp: Path,
    *,
    window: int = 50,
    shutdown_timeout_s: float = 10.0,
    reload_timeout_s: float = 10.0,
    health_interval_s: float = 30.0,
    max_per_s: float = 0.0,
    sink: str = "",
    queue_batches: int = 8,
) -> Path:
    sinks = sink or SLOW_SINK.format(max_per_s=max_per_s, tmp=tmp)
    path = tmp / "ingestd.toml"
    path.write_text(f"""
[daemon]
log_file = "{tmp}/daemon.log"
dead_letter = "{tmp}/dead-letter.jsonl"
state_dir = "{tmp}/state"
shutdown_timeout_s = {shutdown_timeout_s}
reload_timeout_s = {reload_timeout_s}
health_interval_s = {health_interval_s}
queue_batches = {queue_batches}

[[sources]]
type = "simulated"
sensors = 50
rate_hz = 100000
max_batch = 500
queue_batches = 2
seed = 3

[[stages]]
type = "normalize"
window = {window}
{sinks}""")
    return path


async def eventually(condition: Callable[[], object], within_s: float = 20.0) -> None:
    """Until `condition()` holds (the daemon's state or its log says so), at most `within_s`."""
    async with asyncio.timeout(within_s):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


def events(tmp: Path, name: str | None = None) -> list[dict[str, Any]]:
    lines = (tmp / "daemon.log").read_text().splitlines()
    found = [json.loads(line) for line in lines if line.strip()]
    return [e for e in found if name is None or e["event"] == name]


@pytest.fixture(autouse=True)
def _no_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)


async def started(daemon: Daemon, generation: int = 1) -> Pipeline:
    """The generation once data flows through it."""
    await eventually(lambda: daemon.pipeline and daemon.pipeline.generation >= generation)
    assert daemon.pipeline is not None
    async with asyncio.timeout(20):
        await daemon.pipeline.reached("running")
    return daemon.pipeline


async def flowing(daemon: Daemon, readings: int) -> None:
    """Until at least `readings` were acknowledged by every sink."""
    await eventually(lambda: daemon.state.counters.written >= readings)


@contextlib.asynccontextmanager
async def serving(daemon: Daemon) -> AsyncIterator[asyncio.Task[int]]:
    task = asyncio.create_task(daemon.serve())
    try:
        yield task
    finally:
        if not task.done():
            daemon.handle_exit(signal.SIGTERM)
            daemon.handle_exit(signal.SIGTERM)
            await asyncio.wait({task}, timeout=20)


def reconciled(daemon: Daemon) -> bool:
    c = daemon.state.counters
    return c.read + c.replayed == c.written + c.filtered + c.rejected + c.spooled


async def test_sigterm_drains_in_logged_phases_and_spools_nothing(tmp_path: Path) -> None:
    daemon = Daemon(load_config(write_config(tmp_path)))
    async with serving(daemon) as task:
        await started(daemon)
        await flowing(daemon, 5_000)
        os.kill(os.getpid(), signal.SIGTERM)  # through the daemon's own handler
        async with asyncio.timeout(10):
            assert await task == 0
    c = daemon.state.counters
    assert c.spooled == 0 and c.written > 0 and reconciled(daemon)
    phases = events(tmp_path, "shutdown_phase")
    assert [p["phase"] for p in phases] == ["stop_sources", "drain_stages", "flush_sinks", "close"]
    assert {p["reason"] for p in phases} == {"exit"}
    assert all(p["duration_s"] >= 0 and not p["forced"] for p in phases)
    assert phases[-1]["in_flight"] == 0
    (done,) = events(tmp_path, "shutdown_complete")
    assert done["reconciled"] and done["generations"] == 1


async def test_second_sigterm_forces_a_slow_drain_into_the_spool(tmp_path: Path) -> None:
    # 2,000 readings/s and a queue of 64 batches of 500: a full drain would take ~16 s.
    config = write_config(tmp_path, max_per_s=2_000, queue_batches=64)
    daemon = Daemon(load_config(config))
    async with serving(daemon) as task:
        pipeline = await started(daemon)
        await eventually(lambda: pipeline.queue_depth >= 60)
        daemon.handle_exit(signal.SIGTERM)
        await pipeline.reached("drain_stages")
        began = time.monotonic()
        daemon.handle_exit(signal.SIGTERM)
        async with asyncio.timeout(10):
            assert await task == 0
        assert time.monotonic() - began < 3.0
    c = daemon.state.counters
    assert c.spooled > 10_000 and reconciled(daemon)
    assert events(tmp_path, "shutdown_forced")
    assert any(p["forced"] for p in events(tmp_path, "shutdown_phase"))


async def test_a_reload_that_changes_a_stage_builds_the_next_generation(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    daemon = Daemon(load_config(config))
    async with serving(daemon) as task:
        first = await started(daemon)
        await flowing(daemon, 2_000)
        write_config(tmp_path, window=60)
        daemon.handle_reload()
        second = await started(daemon, generation=2)
        assert first.phase == "close" and first is not second
        written = daemon.state.counters.written
        await flowing(daemon, written + 2_000)  # the new generation delivers
        daemon.handle_exit(signal.SIGTERM)
        async with asyncio.timeout(10):
            assert await task == 0
    assert daemon.state.counters.spooled == 0 and reconciled(daemon)
    (reloaded,) = events(tmp_path, "config_reloaded")
    assert reloaded["rebuilt"] is True and reloaded["changed"] == ["stages[0]"]
    reasons = [(p["generation"], p["reason"]) for p in events(tmp_path, "shutdown_phase")]
    assert reasons == [(1, "reload")] * 4 + [(2, "exit")] * 4


async def test_a_reload_of_daemon_settings_only_keeps_the_generation(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    daemon = Daemon(load_config(config))
    async with serving(daemon) as task:
        pipeline = await started(daemon)
        write_config(tmp_path, health_interval_s=0.2)
        os.kill(os.getpid(), signal.SIGHUP)
        # the new interval is live: a report comes within 0.2 s, not after the old 30 s
        await eventually(lambda: events(tmp_path, "pipeline_health"), within_s=5)
        assert daemon.pipeline is pipeline and pipeline.phase == "running"
        daemon.handle_exit(signal.SIGTERM)
        async with asyncio.timeout(10):
            assert await task == 0
    (reloaded,) = events(tmp_path, "config_reloaded")
    assert reloaded["rebuilt"] is False and reloaded["changed"] == ["daemon"]
    assert daemon.generations == 1


async def test_an_invalid_reload_is_logged_and_the_running_generation_kept(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    daemon = Daemon(load_config(config))
    async with serving(daemon) as task:
        pipeline = await started(daemon)
        config.write_text(config.read_text().replace("window = 50", "window = 0"))
        daemon.handle_reload()
        await eventually(lambda: events(tmp_path, "config_reload_failed"))
        assert daemon.pipeline is pipeline and pipeline.phase == "running"
        written = daemon.state.counters.written
        await flowing(daemon, written + 2_000)  # still delivering
        daemon.handle_exit(signal.SIGTERM)
        async with asyncio.timeout(10):
            assert await task == 0
    (failed,) = events(tmp_path, "config_reload_failed")
    assert failed["errors"] == ["stages[0].window: must be >= 1, got 0"]
    assert daemon.generations == 1 and reconciled(daemon)


async def test_sigterm_during_a_reload_drain_ends_there_and_builds_nothing(tmp_path: Path) -> None:
    # A drain that takes ~1.5 s (8 batches of 500 queued, the sink at 4,000 readings/s), far
    # inside both deadlines: the exit must come at the drain's end, with nothing spooled.
    config = write_config(tmp_path, max_per_s=4_000, shutdown_timeout_s=4, reload_timeout_s=20)
    daemon = Daemon(load_config(config))
    async with serving(daemon) as task:
        first = await started(daemon)
        await eventually(lambda: first.queue_depth >= 6)
        write_config(tmp_path, window=60, max_per_s=4_000)
        daemon.handle_reload()
        await first.reached("stop_sources")
        began = time.monotonic()
        daemon.handle_exit(signal.SIGTERM)
        async with asyncio.timeout(10):
            assert await task == 0
        took = time.monotonic() - began
    assert took < 4.0  # the drain, not the deadline
    assert daemon.generations == 1
    c = daemon.state.counters
    assert c.spooled == 0 and c.written > 0 and reconciled(daemon)
    assert not events(tmp_path, "shutdown_timeout")
    assert not events(tmp_path, "config_reloaded")  # the reload never took over


async def test_sigterm_during_start_up_cuts_an_opening_that_never_ends(tmp_path: Path) -> None:
    sink = f'[[sinks]]\ntype = "test_hanging_open"\nspool_dir = "{tmp_path}/spool"\n'
    config = write_config(tmp_path, shutdown_timeout_s=0.5, sink=sink)
    daemon = Daemon(load_config(config))
    async with serving(daemon) as task:
        await eventually(lambda: daemon.pipeline and daemon.pipeline.phase == "starting")
        began = time.monotonic()
        daemon.handle_exit(signal.SIGTERM)
        async with asyncio.timeout(10):
            assert await task == 0
        assert 0.5 <= time.monotonic() - began < 2.0  # the deadline cut it
    assert daemon.state.counters.read == 0 and reconciled(daemon)
    (abandoned,) = events(tmp_path, "shutdown_abandoned")
    assert abandoned["phase"] == "starting"


async def test_sigterm_before_the_first_generation_builds_none(tmp_path: Path) -> None:
    daemon = Daemon(load_config(write_config(tmp_path)))
    await daemon.startup()
    daemon.handle_exit(signal.SIGTERM)
    await daemon.main_loop()
    await daemon.shutdown()
    assert daemon.generations == 0 and daemon.pipeline is None
    (done,) = events(tmp_path, "shutdown_complete")
    assert done["counters"]["read"] == 0 and done["reconciled"]
