"""The encoder child: batches come out in order, each with exactly `encode_batch`'s bytes (or
none, and the sink encodes), through new sensors, refusals, a killed child and slot reuse."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import numpy as np
import pytest
from structlog.testing import capture_logs

from daemon.batch import Batch
from daemon.observability.events import ENCODER_RESTARTED
from daemon.sensors import SENSORS
from daemon.wire.ahead import DEPTH, EncodeAhead
from daemon.wire.encode import encode_batch, wire_bytes

ROOT = Path(__file__).resolve().parents[3]


def batch(i: int, sensors: int = 3, prefix: str = "AH") -> Batch:
    n = 40
    sensor = np.array([SENSORS.intern(f"{prefix}{j}", "V") for j in range(sensors)], np.int32)
    rows = sensor[np.arange(n) % sensors]
    seq = np.arange(n) + 1000 * i
    values = np.round(np.sin(seq) * 50, 3)
    return Batch.from_columns(
        rows, seq, 1.7e9 + seq * 1e-3, values, seq % 7 == 0, columns={"m": values / 3}
    )


async def feed(batches: Iterable[Batch]) -> AsyncIterator[Batch]:
    for b in batches:
        yield b


async def drain_like_the_sink_loop(ahead: EncodeAhead, batches: list[Batch]) -> list[bytes]:
    """Consume as the pipeline's sink loop does: the next batch is pulled while the previous
    one's bytes are still being written; each one's bytes are checked when its turn ends."""
    out: list[bytes] = []
    previous: tuple[Batch, memoryview | None] | None = None
    async for b in ahead.stream(feed(batches)):
        if previous is not None:
            out.append(_bytes_of(*previous))
        previous = (b, wire_bytes(b))
    if previous is not None:
        out.append(_bytes_of(*previous))
    return out


def wait_dead(pid: int) -> None:
    """Until `pid` has exited (a zombie until its parent reaps it, or gone)."""
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.001)


def _bytes_of(b: Batch, view: memoryview | None) -> bytes:
    return bytes(view) if view is not None else encode_batch(b)


@pytest.mark.parametrize("processes", [1, 2])
async def test_batches_come_out_in_order_with_their_exact_wire_bytes(processes: int) -> None:
    ahead = EncodeAhead(processes)
    ahead.start()
    assert len(ahead.pids) == processes
    try:
        batches = [batch(i) for i in range(10)]
        got = await drain_like_the_sink_loop(ahead, batches)
        assert got == [encode_batch(b) for b in batches]
        assert ahead.encoded == 10  # all by the children, none left to the sink
    finally:
        await ahead.close()


async def test_a_batch_is_yielded_once_encoded_without_waiting_for_the_next() -> None:
    """A quiet source: the next batch comes only after the sink got this one. Holding a batch
    back until more arrive would deadlock here (and add latency in the daemon)."""
    delivered = asyncio.Event()

    async def quiet() -> AsyncIterator[Batch]:
        yield batch(0)
        await delivered.wait()
        yield batch(1)

    ahead = EncodeAhead(1)
    ahead.start()
    try:
        async with asyncio.timeout(10):
            out = []
            async for b in ahead.stream(quiet()):
                out.append(bytes(wire_bytes(b) or b""))
                delivered.set()
        assert out == [encode_batch(batch(0)), encode_batch(batch(1))]
    finally:
        await ahead.close()


async def test_an_upstream_error_comes_after_the_batches_before_it() -> None:
    async def failing() -> AsyncIterator[Batch]:
        yield batch(0)
        yield batch(1)
        raise RuntimeError("a source failed")

    ahead = EncodeAhead(1)
    ahead.start()
    got = []
    try:
        with pytest.raises(RuntimeError, match="a source failed"):
            async for b in ahead.stream(failing()):
                got.append(bytes(wire_bytes(b) or b""))
        assert got == [encode_batch(batch(0)), encode_batch(batch(1))]
    finally:
        await ahead.close()


async def test_sensors_interned_after_the_fork_are_encoded() -> None:
    ahead = EncodeAhead(2)
    ahead.start()
    try:
        late = [batch(i, sensors=2 + i, prefix=f"LATE{i}-") for i in range(4)]
        got = await drain_like_the_sink_loop(ahead, late)
        assert got == [encode_batch(b) for b in late]
        assert ahead.encoded == 4
    finally:
        await ahead.close()


async def test_a_batch_the_child_cannot_encode_is_left_to_the_sink() -> None:
    bad = batch(1)
    bad.ts[3] = np.nan  # the sink's own encoding will refuse it with the reason
    ahead = EncodeAhead(2)
    ahead.start()
    try:
        out = [b async for b in ahead.stream(feed([batch(0), bad, batch(2)]))]
        assert [wire_bytes(b) is None for b in out] == [False, True, False]
        assert ahead.encoded == 2
    finally:
        await ahead.close()


async def test_what_cannot_cross_to_the_child_is_left_to_the_sink() -> None:
    unpicklable = batch(0)
    unpicklable.derived = [{"kind": "alert", "why": lambda: None}]
    objects = batch(1)
    objects.columns["note"] = np.array(["a"] * len(objects), dtype=object)
    ahead = EncodeAhead(1)
    ahead.start()
    try:
        out = [b async for b in ahead.stream(feed([unpicklable, objects, batch(2)]))]
        assert [wire_bytes(b) is None for b in out] == [True, True, False]
        assert bytes(wire_bytes(out[2]) or b"") == encode_batch(batch(2))
    finally:
        await ahead.close()


async def test_a_killed_child_is_replaced_and_nothing_is_lost() -> None:
    ahead = EncodeAhead(2)
    ahead.start()
    first, other = ahead.pids
    batches = [batch(i) for i in range(12)]

    async def killing() -> AsyncIterator[Batch]:
        for i, b in enumerate(batches):
            if i == 5:
                os.kill(first, signal.SIGKILL)
                await asyncio.to_thread(wait_dead, first)
            yield b

    try:
        out = []
        with capture_logs() as logs:
            async for b in ahead.stream(killing()):
                view = wire_bytes(b)
                out.append(bytes(view) if view is not None else encode_batch(b))
        assert out == [encode_batch(b) for b in batches]
        assert ahead.restarts == 1
        assert [(e["event"], e["restarts"]) for e in logs] == [(ENCODER_RESTARTED, 1)]
        assert other in ahead.pids and first not in ahead.pids and len(ahead.pids) == 2
        assert ahead.encoded >= len(batches) - DEPTH  # only what the dead child held fell back
    finally:
        await ahead.close()


async def test_the_child_ignores_termination_signals_and_exits_when_closed() -> None:
    ahead = EncodeAhead(2)
    ahead.start()
    pids = ahead.pids
    for pid in pids:
        os.kill(pid, signal.SIGTERM)  # a process-group SIGTERM is the daemon's to handle
    got = await drain_like_the_sink_loop(ahead, [batch(0), batch(1)])
    assert got == [encode_batch(batch(0)), encode_batch(batch(1))]
    assert ahead.encoded == 2 and ahead.restarts == 0
    await ahead.close()
    for pid in pids:
        with pytest.raises(ChildProcessError):  # already reaped: it exited
            os.waitpid(pid, os.WNOHANG)  # noqa: ASYNC222 - WNOHANG: it does not block


def test_wire_bytes_only_for_the_rows_they_were_encoded_from() -> None:
    b = batch(0)
    b.memo["wire"] = (b.sensor, memoryview(b"x"))
    assert wire_bytes(b) is not None
    b.sensor = b.sensor.copy()  # the rows were replaced: the bytes are someone else's
    assert wire_bytes(b) is None


OWNER = """
import asyncio
import numpy as np
from daemon.batch import Batch
from daemon.sensors import SENSORS
from daemon.wire.ahead import EncodeAhead

async def one():
    sensor = np.array([SENSORS.intern("OWN", "V")], np.int32)
    yield Batch.from_columns(sensor, np.array([0]), np.array([1.7e9]), np.array([1.0]))

async def main():
    ahead = EncodeAhead(1)
    ahead.start()
    async for _ in ahead.stream(one()):  # a round trip: the child is past its start
        pass
    print(*ahead.pids, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_the_child_dies_with_the_daemon_even_when_it_cannot_read_its_pipe() -> None:
    """SIGKILL of the daemon: the kernel kills the child (PR_SET_PDEATHSIG), here a child
    that is stopped and so would never see its pipe close."""
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert owner.stdout is not None
        [child] = map(int, owner.stdout.readline().split())
        os.kill(child, signal.SIGSTOP)
        owner.kill()
        owner.wait()
        deadline = time.monotonic() + 3
        while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "Z":
                break
            time.sleep(0.02)
        else:
            assert not Path(f"/proc/{child}").exists(), "the encoder child outlived the daemon"
    finally:
        owner.kill()
        owner.wait()
