"""The daemon's life: `run() → serve() → startup() → main_loop() → shutdown()`.

Read top to bottom, this class is the whole story. It is a thin supervisor: it holds the one
exit request and moves from one pipeline generation to the next (`daemon.topology.pipeline`),
while each generation owns its own stop and force tokens and its phased shutdown.

Signal handlers only set flags and forward them. The first SIGTERM/SIGINT is the exit request:
the running generation drains within `shutdown_timeout_s` (then its in-flight data is spooled),
and no further generation is built; a second one forces at once. SIGHUP reopens the log file and
re-reads the config: a valid one whose plan says "rebuild" drains the running generation (within
`reload_timeout_s`) and builds the next (counters and per-sensor state carry on); one that only
changes daemon settings applies live; an invalid one is logged and the running config kept. An
exit request during a reload's drain shortens that drain's deadline and ends the daemon there.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path
from typing import Any

import structlog

from daemon.config import AppConfig, ConfigError, load_config
from daemon.config.loader import DaemonConfig
from daemon.config.preflight import preflight
from daemon.deadletter import DeadLetter
from daemon.exits import run_to_exit
from daemon.observability import events
from daemon.observability.health import HealthReporter
from daemon.observability.http import HealthServer
from daemon.observability.logging import LogSink, configure_logging, dropped_lines
from daemon.observability.looplag import LoopLagMonitor, watchdog_loop
from daemon.observability.sdnotify import Notifier
from daemon.runtime import RunState
from daemon.topology.flow import until_done_or_set
from daemon.topology.pipeline import Pipeline
from daemon.topology.reload import plan_reload

log = structlog.get_logger("daemon")

_EXIT_SIGNALS = (signal.SIGTERM, signal.SIGINT)


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
        self.state = RunState.fresh(config.daemon.dead_letter, config.daemon.state_dir)
        self.notifier = Notifier.from_env()
        self.lag = LoopLagMonitor()
        self.pipeline: Pipeline | None = None  # the current generation
        self.generations = 0
        self.reporter: HealthReporter | None = None
        self.log_sink: LogSink | None = None
        self.exit_signals = 0
        self.started_at = 0.0
        self._wake: asyncio.Event | None = None  # an exit or a reload was asked for
        self._reload_wanted = False
        self._interval_changed = asyncio.Event()  # the health loop's wait restarts
        self._tasks: list[asyncio.Task[Any]] = []
        self._http: HealthServer | None = None
        self._watchdog: asyncio.Task[None] | None = None

    @property
    def exit_requested(self) -> bool:
        return self.exit_signals > 0

    # -- the story -------------------------------------------------------------------------
    def run(self) -> int:
        return run_to_exit(self.serve())

    async def serve(self) -> int:
        await self.startup()
        code = 0
        try:
            await self.main_loop()
        except Exception as exc:
            log.exception(events.PIPELINE_FAILED, error=repr(exc))
            code = 1
        await self.shutdown()
        return code

    async def startup(self) -> None:
        self.started_at = time.monotonic()
        d = self.config.daemon
        self.log_sink = configure_logging(d.log_level, d.log_file)
        self._wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in _EXIT_SIGNALS:
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
        """Run one generation after another until the stream ends or an exit is requested.
        An exit request is checked before every generation is built, so none is ever lost."""
        while not self.exit_requested:
            pipeline = self._next_generation()
            running = asyncio.create_task(pipeline.run(), name=f"pipeline-{self.generations}")
            ready = asyncio.create_task(self._ready_when_started(pipeline))
            try:
                new_config = await self._run_until_rebuild(running)
                if new_config is not None:  # drain this generation, then switch
                    pipeline.request_stop(self.config.daemon.reload_timeout_s, reason="reload")
                await running  # ends by itself after a stop request; raises a pipeline error
            finally:
                ready.cancel()
            if new_config is None or self.exit_requested:
                return  # an exit during the reload's drain: the next generation is not built
            await self._switch_to(new_config)

    async def shutdown(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (*_EXIT_SIGNALS, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._http is not None:
            await self._http.stop()
        dead_letter = self.state.dead_letter
        dead_letter.retry()
        dead_letter.close()
        counters = self.state.counters.snapshot()
        log.info(
            events.SHUTDOWN_COMPLETE,
            counters=counters,
            reconciled=self.state.counters.reconciles(),
            generations=self.generations,
            log_dropped=dropped_lines(),
            dead_letter={
                "written": dead_letter.count,
                "pending": dead_letter.pending,
                "dropped": dead_letter.dropped,
            },
            duration_s=round(time.monotonic() - self.started_at, 3),
            peak_rss_mb=peak_rss_mb(),
            e2e_latency_cdf_ms=self.state.latency.cdf_ms(),
        )
        if self.log_sink is not None:
            self.log_sink.close()

    # -- signals: flags only ---------------------------------------------------------------
    def handle_exit(self, sig: int) -> None:
        self.exit_signals += 1
        name = signal.Signals(sig).name
        if self.exit_signals == 1:
            timeout_s = self.config.daemon.shutdown_timeout_s
            log.info(events.SHUTDOWN_STARTED, signal=name, timeout_s=timeout_s)
            self.notifier.stopping()
            if self.pipeline is not None:
                self.pipeline.request_stop(timeout_s, reason="exit")
        else:
            log.warning(events.SHUTDOWN_FORCED, signal=name)
            if self.pipeline is not None:
                self.pipeline.force()
        if self._wake is not None:
            self._wake.set()

    def handle_reload(self) -> None:
        if self.log_sink is not None:
            self.log_sink.reopen()
        self._reload_wanted = True
        if self._wake is not None:
            self._wake.set()

    # -- generations -----------------------------------------------------------------------
    def _next_generation(self) -> Pipeline:
        assert self.reporter is not None
        self.generations += 1
        self.pipeline = Pipeline(self.config, self.state, generation=self.generations)
        self.reporter.attach(self.pipeline)
        return self.pipeline

    async def _run_until_rebuild(self, running: asyncio.Task[None]) -> AppConfig | None:
        """Wait for the generation to end (→ None), for an exit request (→ None: the
        generation drains by itself) or for a reload whose plan rebuilds (→ the new config).
        Reloads that change nothing, or only daemon settings, are applied here without
        touching the running generation; invalid ones are logged and ignored."""
        assert self._wake is not None
        while True:
            if not (self.exit_requested or self._reload_wanted):
                await until_done_or_set(running, self._wake)
            self._wake.clear()
            if running.done() or self.exit_requested:
                return None
            self._reload_wanted = False
            new_config = self._reread_config()
            if new_config is None:
                continue
            if plan_reload(self.config, new_config).rebuild:
                return new_config
            await self._switch_to(new_config)
            self.notifier.ready()

    def _reread_config(self) -> AppConfig | None:
        self.notifier.reloading()
        try:
            new_config = load_config(self.config.path)
        except ConfigError as exc:
            issues = exc.issues
        else:
            issues = preflight(new_config, previous=self.config)
            if not issues:
                return new_config
        log.error(events.CONFIG_RELOAD_FAILED, errors=[str(i) for i in issues])
        self.notifier.ready()
        return None

    async def _switch_to(self, new_config: AppConfig) -> None:
        """The new config becomes the running one: live, or after the old generation drained
        (then the next generation's components publish their own gauges)."""
        plan = plan_reload(self.config, new_config)
        old, self.config = self.config, new_config
        if plan.rebuild:
            self.state.gauges.clear()
        await self._apply_daemon_settings(old.daemon)
        changed = list(plan.changed)
        for change in plan.keys:  # the audit trail: what was edited, from what, to what
            log.info(events.CONFIG_KEY_CHANGED, key=change.key, old=change.old, new=change.new)
        log.info(
            events.CONFIG_RELOADED,
            config=self.config.path,
            changed=changed,
            keys=[change.key for change in plan.keys],
            rebuilt=plan.rebuild,
        )

    # -- helpers ---------------------------------------------------------------------------
    async def _ready_when_started(self, pipeline: Pipeline) -> None:
        await pipeline.reached("running")
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
        if d.health_interval_s != old.health_interval_s:
            self._interval_changed.set()

    def _refresh_status(self) -> None:
        if self.reporter is not None:
            self.notifier.status(self.reporter.status_text())

    async def _health_loop(self) -> None:
        """A `pipeline_health` event every `health_interval_s`; `report` numbers them from 1
        so an operator (and the logrotate test) can see that none is missing."""
        assert self.reporter is not None
        report = 0
        while True:
            try:
                async with asyncio.timeout(self.config.daemon.health_interval_s):
                    await self._interval_changed.wait()
                self._interval_changed.clear()  # a reload set a new interval: count from now
                continue
            except TimeoutError:
                pass
            report += 1
            log.info(events.PIPELINE_HEALTH, report=report, **self.reporter.snapshot())
            self._refresh_status()
