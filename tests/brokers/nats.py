"""A private nats-server with JetStream, for tests that restart the broker or need it alone.

Why a private one: a test that restarts the broker must never touch the machine's server on
4222 (other tests and other people use it). This one listens on a free loopback port and keeps
its JetStream store in the test's tmp dir, so a `restart()` on the same port and store is what
an operator's restart is: streams, consumers and unacknowledged messages survive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import nats
import nats.js.errors
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

NATS_SERVER = "/usr/sbin/nats-server"
START_TIMEOUT_S = 10.0


def free_port() -> int:
    """A loopback TCP port nobody listens on now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class NatsServer:
    """`nats-server -js` on 127.0.0.1:<free port>, store and log under `tmp_path`; started on
    construction, and back on the same port and store after `restart()`."""

    def __init__(self, tmp_path: Path, *, port: int | None = None) -> None:
        if not Path(NATS_SERVER).exists():  # like the `server` marker: skipped, or under CI failed
            reason = f"{NATS_SERVER} is not installed"
            if os.environ.get("CI") == "true":
                pytest.fail(f"CI=true and {reason}", pytrace=False)
            pytest.skip(reason)
        self.store = tmp_path / "nats-store"
        self.store.mkdir(parents=True, exist_ok=True)
        self.log_path = tmp_path / "nats-server.log"
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.proc is not None:
            return
        command = [NATS_SERVER, "-js", "-sd", str(self.store), "-a", "127.0.0.1"]
        command += ["-p", str(self.port), "-l", str(self.log_path)]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT_S
        # JetStream is enabled before the client listener opens, so accepting means ready.
        while not accepts(self.port):
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                self.proc = None
                raise RuntimeError(f"nats-server exited at start: {err[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nats-server not accepting on {self.port} in time")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL after 5 s); the store stays for a restart."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while accepts(self.port) and time.monotonic() < deadline:
            time.sleep(0.02)

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> NatsServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(Exception):
            self.stop()


async def publish_all(
    js: JetStreamContext, messages: Iterable[tuple[str, bytes]], *, window: int = 256
) -> int:
    """Publish through JetStream, each one confirmed stored by the server (a PubAck), up to
    `window` in flight at once; how many were published."""
    count = 0
    chunk: list[tuple[str, bytes]] = []
    for item in messages:
        chunk.append(item)
        if len(chunk) >= window:
            await asyncio.gather(*(js.publish(s, p) for s, p in chunk))
            count += len(chunk)
            chunk = []
    if chunk:
        await asyncio.gather(*(js.publish(s, p) for s, p in chunk))
        count += len(chunk)
    return count


def reading(sensor_id: str, seq: int, value: float = 1.0, **more: Any) -> bytes:
    return json.dumps({"sensor_id": sensor_id, "seq": seq, "value": value, **more}).encode()


def unique_name(prefix: str = "T") -> str:
    """A stream or consumer name no other test (or engineer) uses."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


async def connect(url: str) -> Client:
    """A test's own short-lived client: one attempt, failing fast when the server is down
    (nats-py's default retries 60 times, 2 s apart, and `max_reconnect_attempts=0` means
    forever), so a test waits on its own deadlines, never on the client's."""
    return await nats.connect(url, connect_timeout=2, allow_reconnect=False)


async def delete_stream(url: str, name: str) -> None:
    nc = await connect(url)
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await nc.jetstream().delete_stream(name)
    finally:
        await nc.close()
