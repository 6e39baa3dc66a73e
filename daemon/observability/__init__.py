"""Observability: JSON logs, the systemd protocol, loop lag, health reports and metrics."""

from daemon.observability import events
from daemon.observability.health import HealthReporter, RateMeter, StageStats
from daemon.observability.http import HealthServer
from daemon.observability.logging import LogSink, configure_logging, reconfigure
from daemon.observability.looplag import LagStats, LoopLagMonitor, rss_bytes, watchdog_loop
from daemon.observability.sdnotify import Notifier, watchdog_interval

__all__ = [
    "HealthReporter",
    "HealthServer",
    "LagStats",
    "LogSink",
    "LoopLagMonitor",
    "Notifier",
    "RateMeter",
    "StageStats",
    "configure_logging",
    "events",
    "reconfigure",
    "rss_bytes",
    "watchdog_interval",
    "watchdog_loop",
]
