"""sd_notify against real AF_UNIX datagram sockets bound by the test (path and abstract)."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.observability.logging import configure_logging
from daemon.observability.sdnotify import Notifier, watchdog_interval


@pytest.fixture
def path_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    address = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    yield address, sock
    sock.close()


@pytest.fixture
def abstract_socket() -> Iterator[tuple[str, socket.socket]]:
    name = f"ingestd-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    yield "@" + name, sock
    sock.close()


def recv(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_without_notify_socket_every_call_is_a_silent_no_op() -> None:
    notifier = Notifier.from_env({})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog() is False
    assert notifier.status("x") is False


def test_messages_reach_a_path_socket(path_socket: tuple[str, socket.socket]) -> None:
    address, sock = path_socket
    notifier = Notifier.from_env({"NOTIFY_SOCKET": address})
    assert notifier.ready()
    assert recv(sock) == "READY=1"
    notifier.ready(status="12 readings/s\nsinks: ok")
    assert recv(sock) == "READY=1\nSTATUS=12 readings/s sinks: ok"
    notifier.status("hello")
    assert recv(sock) == "STATUS=hello"
    notifier.watchdog()
    assert recv(sock) == "WATCHDOG=1"
    notifier.stopping()
    assert recv(sock) == "STOPPING=1"
    notifier.notify(errno=5, extend_timeout_usec=1000)
    assert recv(sock) == "ERRNO=5\nEXTEND_TIMEOUT_USEC=1000"
    notifier.close()


def test_messages_reach_an_abstract_socket(abstract_socket: tuple[str, socket.socket]) -> None:
    address, sock = abstract_socket
    notifier = Notifier.from_env({"NOTIFY_SOCKET": address})
    notifier.stopping()
    assert recv(sock) == "STOPPING=1"


def test_reloading_carries_the_monotonic_timestamp(
    path_socket: tuple[str, socket.socket],
) -> None:
    address, sock = path_socket
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    Notifier.from_env({"NOTIFY_SOCKET": address}).reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = recv(sock).split("\n")
    assert first == "RELOADING=1"
    key, value = second.split("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after


def test_a_send_error_is_logged_once_and_never_raised(tmp_path: Path) -> None:
    log_file = tmp_path / "ingestd.log"
    configure_logging("info", str(log_file))
    try:
        notifier = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens.sock")})
        assert notifier.watchdog() is False
        assert notifier.watchdog() is False
        assert notifier.ready() is False
    finally:
        configure_logging("info", "")
    events = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [e["event"] for e in events] == ["notify_failed"]
    assert events[0]["message"] == "WATCHDOG=1"


def test_the_failure_log_rearms_after_a_success(tmp_path: Path) -> None:
    log_file = tmp_path / "ingestd.log"
    address = str(tmp_path / "late.sock")
    configure_logging("info", str(log_file))
    try:
        notifier = Notifier.from_env({"NOTIFY_SOCKET": address})
        notifier.watchdog()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(address)
            assert notifier.watchdog()
        Path(address).unlink()
        notifier.watchdog()
    finally:
        configure_logging("info", "")
    events = [json.loads(line)["event"] for line in log_file.read_text().splitlines()]
    assert events == ["notify_failed", "notify_failed"]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "4242"}, 1.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, None),  # for another process
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "me"}, None),
    ],
)
def test_watchdog_interval_env_rules(env: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(env, pid=4242) == expected


def test_watchdog_interval_defaults_to_this_process() -> None:
    env = {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval(env) == 0.5
    assert Notifier.from_env(env).watchdog_interval() == 0.5
    assert Notifier.from_env({}).watchdog_interval() is None
