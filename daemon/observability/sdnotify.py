"""The sd_notify protocol by hand: newline-separated `KEY=value` pairs in one datagram to the
AF_UNIX socket named by `$NOTIFY_SOCKET` (a path, or an abstract name when it starts with `@`).

Why by hand: it is a dozen lines and a dependency would add a C extension to the unit. Outside
systemd (no `$NOTIFY_SOCKET`) every call is a silent no-op, so callers never branch on it. A
send never blocks the event loop (non-blocking socket) and never raises: a notification that
cannot be delivered is logged once per failure streak, because the pipeline matters more than
systemd's view of it.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

import structlog

from daemon.observability import events

log = structlog.get_logger(__name__)


def watchdog_interval(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings: half of `$WATCHDOG_USEC`, as sd_watchdog_enabled(3)
    advises; None when the watchdog is off or meant for another process (`$WATCHDOG_PID`)."""
    env = os.environ if env is None else env
    pid = os.getpid() if pid is None else pid
    raw_usec = env.get("WATCHDOG_USEC", "")
    raw_pid = env.get("WATCHDOG_PID", "")
    try:
        usec = int(raw_usec)
        if raw_pid and int(raw_pid) != pid:
            return None
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 2 / 1e6


class Notifier:
    """Sends sd_notify messages; build it with `from_env()` (no loop needed)."""

    def __init__(self, address: str | None, watchdog_s: float | None = None) -> None:
        self.address = address or None
        self._watchdog_s = watchdog_s
        self._sock: socket.socket | None = None
        self._failing = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if env is None else env
        return cls(env.get("NOTIFY_SOCKET"), watchdog_interval(env))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def watchdog_interval(self) -> float | None:
        """Seconds between pings systemd expects from this process, or None."""
        return self._watchdog_s

    def notify(self, **fields: object) -> bool:
        """Send `KEY=value` lines (keys upper-cased); True when the datagram was sent."""
        if self.address is None:
            return False
        payload = "\n".join(f"{k.upper()}={v}" for k, v in fields.items()).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(payload, _sockaddr(self.address))
        except OSError as exc:
            if not self._failing:
                self._failing = True
                log.warning(
                    events.NOTIFY_FAILED,
                    socket=self.address,
                    message=payload.decode(),
                    error=str(exc),
                )
            return False
        self._failing = False
        return True

    def ready(self, status: str | None = None) -> bool:
        if status is None:
            return self.notify(READY=1)
        return self.notify(READY=1, STATUS=_one_line(status))

    def reloading(self) -> bool:
        """RELOADING=1 with the CLOCK_MONOTONIC timestamp systemd (Type=notify-reload) wants."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify(RELOADING=1, MONOTONIC_USEC=usec)

    def stopping(self) -> bool:
        return self.notify(STOPPING=1)

    def status(self, text: str) -> bool:
        return self.notify(STATUS=_one_line(text))

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG=1)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _sockaddr(address: str) -> str | bytes:
    if address.startswith("@"):
        return b"\0" + address[1:].encode()  # Linux abstract namespace
    return address


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())
