"""The daemon's life: `run() → serve() → startup() → main_loop() → shutdown()`.

Read top to bottom, this class is the whole story. Signal handlers only set flags: the first
SIGTERM/SIGINT asks the sources to stop and the pipeline to drain (bounded by
`shutdown_timeout_s`, after which in-flight data is spooled); a second one forces the spool at
once. SIGHUP reopens the log file and re-reads the config: a valid one drains the running
pipeline and builds a new one (counters and per-sensor state carry on), an invalid one is logged
and the running config kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path
from typing import Any

import structlog
import uvloop

from daemon.config import AppConfig, ConfigError, load_config
from daemon.config.loader import DaemonConfig
from daemon.deadletter import DeadLetter
from daemon.observability import events
from daemon.observability.health import HealthReporter
from daemon.observability.http import HealthServer
from daemon.observability.logging import LogSink, configure_logging
from daemon.observability.looplag import LoopLagMonitor, watchdog_loop
from daemon.observability.sdnotify import Notifier
from daemon.runtime import RunState
from daemon.topology.pipeline import Pipeline

log = structlog.get_logger("daemon")

FORCED_EXIT_GRACE_S = 5.0  # after force: how long spooling in-flight data may take


def _needs_rebuild(new: AppConfig, old: AppConfig, changed: list[str]) -> bool:
    """Sources, stages and sinks are rebuilt behind a drain; daemon settings apply live
    (log level and file, dead-letter path, health interval), except the queue size."""
    if any(c != "daemon" for c in changed):
        return True
    return new.daemon.queue_batches != old.daemon.queue_batches


def peak_rss_mb() -> float | None:
    """The process's peak resident set (VmHWM), for the shutdown report and the benchmarks."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


class Daemon:
    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.state = RunState.fresh(config.daemon.dead_letter)
        self.notifier = Notifier.from_env()
        self.lag = LoopLagMonitor()
        self.pipeline: Pipeline | None = None
        self.reporter: HealthReporter | None = None
        self.log_sink: LogSink | None = None
        self.exit_signals = 0
        self.reload_requested: asyncio.Event | None = None
        self.stop_requested: asyncio.Event | None = None
        self.started_at = 0.0
        self._tasks: list[asyncio.Task[Any]] = []
        self._http: HealthServer | None = None
        self._watchdog: asyncio.Task[None] | None = None

    # -- the story -------------------------------------------------------------------------
    def run(self) -> int:
        return uvloop.run(self.serve())

    async def serve(self) -> int:
        await self.startup()
        try:
            await self.main_loop()
        except Exception as exc:
            log.exception("pipeline_failed", error=repr(exc))
            await self.shutdown()
            return 1
        await self.shutdown()
        return 0

    async def startup(self) -> None:
        self.started_at = time.monotonic()
        d = self.config.daemon
        self.log_sink = configure_logging(d.log_level, d.log_file)
        self.reload_requested = asyncio.Event()
        self.stop_requested = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.handle_exit, sig)
        loop.add_signal_handler(signal.SIGHUP, self.handle_reload)
        self.reporter = HealthReporter(self.state, self.lag)
        self._tasks.append(asyncio.create_task(self.lag.run(), name="loop-lag"))
        self._tasks.append(asyncio.create_task(self._health_loop(), name="health"))
        await self._start_watchdog_and_http()
        log.info(
            events.DAEMON_STARTED,
            config=self.config.path,
            sources=len(self.config.sources),
            stages=[s.name for s in self.config.stages],
            sinks=[s.name for s in self.config.sinks],
        )

    async def main_loop(self) -> None:
        """Run the pipeline; on a reload that changes it, drain it and run a new one."""
        while True:
            self.pipeline = Pipeline(self.config, self.state)
            assert self.reporter is not None
            self.reporter.attach(self.pipeline)
            running = asyncio.create_task(self.pipeline.run(), name="pipeline")
            ready = asyncio.create_task(self._ready_when_started(self.pipeline))
            new_config = await self._run_until_rebuild(running)
            ready.cancel()
            if new_config is None:
                return
            self.state.stop.set()
            await self._drain(running)
            changed = new_config.describe_changes(self.config)
            old, self.config = self.config, new_config
            self.state.reset_flags()
            self.state.gauges.clear()  # the new pipeline's components publish their own
            await self._apply_daemon_settings(old.daemon)
            log.info(events.CONFIG_RELOADED, config=self.config.path, changed=changed, rebuilt=True)

    async def shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._http is not None:
            await self._http.stop()
        self.state.dead_letter.close()
        counters = self.state.counters.snapshot()
        log.info(
            events.SHUTDOWN_COMPLETE,
            counters=counters,
            reconciled=self.state.counters.reconciles(),
            duration_s=round(time.monotonic() - self.started_at, 3),
            peak_rss_mb=peak_rss_mb(),
        )
        if self.log_sink is not None:
            self.log_sink.close()

    # -- signals: flags only ---------------------------------------------------------------
    def handle_exit(self, sig: int) -> None:
        self.exit_signals += 1
        if self.exit_signals == 1:
            log.info(events.SHUTDOWN_STARTED, signal=signal.Signals(sig).name)
            self.notifier.stopping()
            self.state.stop.set()
            if self.stop_requested is not None:
                self.stop_requested.set()
            asyncio.get_running_loop().call_later(
                self.config.daemon.shutdown_timeout_s, self._deadline_passed
            )
        else:
            log.warning("shutdown_forced", signal=signal.Signals(sig).name)
            self.state.force.set()

    def handle_reload(self) -> None:
        if self.log_sink is not None:
            self.log_sink.reopen()
        if self.reload_requested is not None:
            self.reload_requested.set()

    def _deadline_passed(self) -> None:
        if not self.state.force.is_set():
            log.warning("shutdown_timeout", timeout_s=self.config.daemon.shutdown_timeout_s)
            self.state.force.set()

    # -- helpers ---------------------------------------------------------------------------
    async def _run_until_rebuild(self, running: asyncio.Task[None]) -> AppConfig | None:
        """Wait for the pipeline to end (→ None) or for a reload that changes the pipeline
        (→ the new config). Reloads that change nothing, or only daemon settings, are applied
        here without touching the running pipeline; invalid ones are logged and ignored."""
        assert self.reload_requested is not None and self.stop_requested is not None
        while True:
            reload_wait = asyncio.create_task(self.reload_requested.wait())
            await asyncio.wait({running, reload_wait}, return_when=asyncio.FIRST_COMPLETED)
            reload_wait.cancel()
            if running.done() or self.stop_requested.is_set():
                await self._drain(running)
                return None
            self.reload_requested.clear()
            self.notifier.reloading()
            try:
                new_config = load_config(self.config.path)
            except ConfigError as exc:
                log.error(events.CONFIG_RELOAD_FAILED, errors=[str(i) for i in exc.issues])
                self.notifier.ready()
                continue
            changed = new_config.describe_changes(self.config)
            if _needs_rebuild(new_config, self.config, changed):
                return new_config
            old, self.config = self.config, new_config
            await self._apply_daemon_settings(old.daemon)
            log.info(
                events.CONFIG_RELOADED, config=self.config.path, changed=changed, rebuilt=False
            )
            self.notifier.ready()

    async def _drain(self, running: asyncio.Task[None]) -> None:
        """Wait for the pipeline to finish; after a forced stop, give it a bounded grace."""
        force_wait = asyncio.create_task(self.state.force.wait())
        await asyncio.wait({running, force_wait}, return_when=asyncio.FIRST_COMPLETED)
        if not running.done():
            try:
                async with asyncio.timeout(FORCED_EXIT_GRACE_S):
                    await asyncio.shield(running)
            except TimeoutError:
                log.error("shutdown_abandoned", in_flight=self.state.counters.in_flight)
                running.cancel()
        force_wait.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running  # re-raises a pipeline error

    async def _ready_when_started(self, pipeline: Pipeline) -> None:
        await pipeline.started.wait()
        self.notifier.ready()
        self._refresh_status()

    async def _start_watchdog_and_http(self) -> None:
        """(Re)start the pieces that read `loop_stall_s` and `[daemon.http]` once."""
        d = self.config.daemon
        assert self.reporter is not None
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        interval = self.notifier.watchdog_interval()
        if interval is not None:
            self._watchdog = asyncio.create_task(
                watchdog_loop(self.notifier, self.lag, interval, d.loop_stall_s), name="watchdog"
            )
        if self._http is not None:
            await self._http.stop()
            self._http = None
        if d.http.enabled:
            self._http = HealthServer(d.http, self.reporter, loop_stall_s=d.loop_stall_s)
            await self._http.start()

    async def _apply_daemon_settings(self, old: DaemonConfig) -> None:
        d = self.config.daemon
        if self.log_sink is not None:
            self.log_sink = self.log_sink.reconfigure(d.log_level, d.log_file)
        if str(self.state.dead_letter.path) != d.dead_letter:
            self.state.dead_letter.close()
            self.state.dead_letter = DeadLetter(d.dead_letter)
        if (d.http, d.loop_stall_s) != (old.http, old.loop_stall_s):
            await self._start_watchdog_and_http()

    def _refresh_status(self) -> None:
        if self.reporter is not None:
            self.notifier.status(self.reporter.status_text())

    async def _health_loop(self) -> None:
        """A `pipeline_health` event every `health_interval_s`; `report` numbers them from 1
        so an operator (and the logrotate test) can see that none is missing."""
        assert self.reporter is not None
        report = 0
        while True:
            await asyncio.sleep(self.config.daemon.health_interval_s)
            report += 1
            log.info(events.PIPELINE_HEALTH, report=report, **self.reporter.snapshot())
            self._refresh_status()
