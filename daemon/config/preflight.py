"""Checks of a valid config against the machine it is about to run on: what only the machine
can say, asked before anything starts, so `validate` and `run` exit 78 naming the key.

Why apart from `parse_config`: the same config is re-read on every SIGHUP, while the daemon
itself holds what these checks probe (its own HTTP port): a check here is run by the CLI before
a start, and on a reload only for what the reload changes (`previous`).

- `[daemon.http]` enabled: its host and port can be bound now. The probe binds as
  `asyncio.start_server` does (SO_REUSEADDR, IPv6 only on IPv6 sockets, every address the
  host resolves to), so a port another process listens on is refused, one in TIME_WAIT is not.
"""

from __future__ import annotations

import errno
import socket

from daemon.config.core import ConfigIssue
from daemon.config.loader import AppConfig, HttpConfig


def preflight(app: AppConfig, previous: AppConfig | None = None) -> list[ConfigIssue]:
    """Every issue the machine raises with `app`; with `previous` (a reload), only those of
    settings that differ from it (the daemon holds the others already)."""
    issues: list[ConfigIssue] = []
    http = app.daemon.http
    if previous is None or http != previous.daemon.http:
        issues += http_issues(http)
    return issues


def http_issues(http: HttpConfig) -> list[ConfigIssue]:
    """Whether `[daemon.http]` can listen where it says (nothing to check when disabled or on
    port 0, any free port)."""
    if not http.enabled or http.port == 0:
        return []
    try:
        infos = socket.getaddrinfo(
            http.host or None, http.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (socket.gaierror, UnicodeError) as exc:
        return [ConfigIssue("daemon.http.host", f"cannot be resolved: {exc}")]
    for family, kind, proto, _, address in dict.fromkeys(infos):
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                probe.bind(address)
        except OSError as exc:
            return [_bind_issue(http, exc)]
    return []


def _bind_issue(http: HttpConfig, exc: OSError) -> ConfigIssue:
    where = f"{http.host}:{http.port}"
    if exc.errno == errno.EADDRINUSE:
        return ConfigIssue("daemon.http.port", f"{where} is in use (another process listens)")
    if exc.errno == errno.EACCES:
        return ConfigIssue("daemon.http.port", f"{where}: binding it is not permitted")
    if exc.errno == errno.EADDRNOTAVAIL:
        return ConfigIssue("daemon.http.host", f"{http.host!r} is not an address of this machine")
    return ConfigIssue("daemon.http.port", f"cannot listen on {where}: {exc.strerror or exc}")
