"""The client connection: nats-py's own reconnect loop, made visible in logs and gauges.

Why no reconnect logic of ours: nats-py already reconnects (and resubscribes the pull
subscription's inbox, and sends the commands buffered meanwhile, acks included) — it is told
never to give up (`max_reconnect_attempts = -1`), which also makes the first connection retry
until the server answers, so a daemon started before its broker does not restart-loop. What is
added here is what an operator needs: `source_connected` / `source_disconnected` events, one
`source_failed` per kind of error per outage (not one every `reconnect_wait_s`), the
`connected` and `reconnects` gauges, and `changed`, an event the pull loop waits on so an idle
fetch lost with the old connection is renewed at once, not when it times out.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import nats
from nats.aio.client import Client

from daemon.observability import events
from daemon.runtime import ComponentContext
from daemon.sources.nats.config import NatsConfig


class Link:
    """One client connection of one source."""

    def __init__(self, config: NatsConfig, ctx: ComponentContext) -> None:
        self.config = config
        self.ctx = ctx
        self.nc: Client = Client()
        self.changed = asyncio.Event()  # set on every reconnect; the pull loop clears it
        self._gauge = ctx.gauge()
        self._gauge.update(connected=False, reconnects=0, connect_errors=0)
        self._logged_errors: set[str] = set()  # what this outage already logged
        self._ever_connected = False

    async def connect(self) -> None:
        """Return once connected (retrying as long as it takes; cancel it to give up)."""
        cfg = self.config
        await self.nc.connect(
            servers=cfg.servers(),
            name=f"ingestd {self.ctx.label} {socket.gethostname()}",
            user=cfg.user or None,
            password=cfg.password.reveal() if cfg.password is not None else None,
            token=cfg.token.reveal() if cfg.token is not None else None,
            connect_timeout=cfg.connect_timeout_s,  # type: ignore[arg-type]  # a float works
            reconnect_time_wait=cfg.reconnect_wait_s,  # type: ignore[arg-type]
            max_reconnect_attempts=-1,
            allow_reconnect=True,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        self._ever_connected = True
        self._up(reconnect=False)

    @property
    def connected(self) -> bool:
        return bool(self.nc.is_connected)

    async def close(self, flush_timeout_s: float) -> None:
        """Send what is buffered (the last acks) and wait for the server to have it, then
        close. A server that is gone by now gets nothing: those messages are redelivered."""
        nc = self.nc
        if nc.is_closed:
            return
        if nc.is_connected:
            try:
                await nc.flush(timeout=flush_timeout_s)  # type: ignore[arg-type]
            except (nats.errors.Error, OSError) as exc:
                self.ctx.log.warning(
                    events.SOURCE_ACK_FAILED,
                    source=self.ctx.label,
                    error=f"final flush: {type(exc).__name__}: {exc}",
                )
        self._gauge["connected"] = False  # before: closing calls disconnected_cb, not news
        try:
            await nc.close()
        except (nats.errors.Error, OSError) as exc:
            self.ctx.log.warning(events.SOURCE_FAILED, source=self.ctx.label, error=str(exc))

    # -- nats-py callbacks ---------------------------------------------------------------------

    async def _on_error(self, exc: Exception) -> None:
        self._gauge["connect_errors"] += 1
        text = f"{type(exc).__name__}: {exc}"
        if text in self._logged_errors:
            return
        self._logged_errors.add(text)
        self.ctx.log.warning(
            events.SOURCE_FAILED,
            source=self.ctx.label,
            url=self._where(),
            error=text,
            retry_in_s=self.config.reconnect_wait_s,
        )

    async def _on_disconnected(self) -> None:
        if not self._ever_connected or not self._gauge["connected"]:
            return  # a failed attempt of an outage already reported
        self._gauge["connected"] = False
        self.ctx.log.warning(events.SOURCE_DISCONNECTED, source=self.ctx.label, url=self._where())

    async def _on_reconnected(self) -> None:
        self._gauge["reconnects"] += 1
        self._up(reconnect=True)
        self.changed.set()

    def _up(self, *, reconnect: bool) -> None:
        self._logged_errors.clear()
        self._gauge["connected"] = True
        info: dict[str, Any] = {}
        with contextlib.suppress(Exception):  # only for the log line
            info["server_version"] = str(self.nc.connected_server_version)
        self.ctx.log.info(
            events.SOURCE_CONNECTED,
            source=self.ctx.label,
            url=self._where(),
            reconnect=reconnect,
            **info,
        )

    def _where(self) -> str:
        """The server connected to (or tried), without credentials."""
        url = self.nc.connected_url
        if url is not None:
            return f"{url.scheme}://{url.hostname}:{url.port}"
        return ",".join(_without_credentials(u) for u in self.config.servers())


def _without_credentials(url: str) -> str:
    at = url.rfind("@")
    if at < 0:
        return url
    scheme = url.find("://")
    return url[: scheme + 3] + url[at + 1 :] if scheme >= 0 else url[at + 1 :]
