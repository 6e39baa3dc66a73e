"""Fixtures every kind of test may use: the daemons a test starts as processes, killed after it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.daemonproc import DaemonProcess


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    """Every daemon a test starts is killed at teardown, whatever the test did."""
    started: list[DaemonProcess] = []
    yield started
    for d in started:
        d.kill()
