"""features through a real process pool: warm start, one submission per batch, in-order output,
a SIGKILLed worker recovered without losing records, and `force` not waiting on a stuck pool.

The pool's records are compared with the inline stage's (workers=0), which test_features_stage.py
checks against the per-record reference: same math, so they must be equal exactly.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from daemon import lifeline
from daemon.batch import Batch, FloatArray
from daemon.observability import events
from daemon.sensors import SENSORS
from daemon.stages.features.pool import FeaturePool
from daemon.stages.features.stage import Features
from tests.support import TestContext, levers

WINDOW = 8


def batches(seed: int, rows: int = 1_200, size: int = 37, n_sensors: int = 3) -> list[Batch]:
    """Random readings of a few interleaved sensors (seq counting per sensor), in batches."""
    rng = np.random.default_rng(seed)
    ids = np.array([SENSORS.intern(f"P{seed}-{i}") for i in range(n_sensors)], dtype=np.int32)
    sensor = ids[rng.integers(0, n_sensors, rows)]
    seq = np.zeros(rows, dtype=np.int64)
    for idx in ids:  # per-sensor running count (a loop over 3 sensors, test setup only)
        mine = sensor == idx
        seq[mine] = np.arange(int(mine.sum()))
    ts = 1.7e9 + seq * 0.1 + rng.uniform(0, 0.01, rows)
    value = rng.normal(30, 5, rows)
    return [
        Batch.from_columns(
            sensor[i : i + size], seq[i : i + size], ts[i : i + size], value[i : i + size]
        )
        for i in range(0, rows, size)
    ]


async def feed(items: Iterable[Batch]) -> AsyncIterator[Batch]:
    for batch in items:
        yield batch


async def collect(stream: AsyncIterator[Batch]) -> list[Batch]:
    return [batch async for batch in stream]


def records(out: list[Batch]) -> list[dict[str, Any]]:
    return [d for b in out for d in b.derived]


async def inline_records(seed: int, **kw: int) -> list[dict[str, Any]]:
    stage = Features(Features.Config(window=WINDOW, workers=0), TestContext())
    return records(await collect(stage.process(feed(batches(seed, **kw)))))


def same_batches(got: list[Batch], want: list[Batch]) -> bool:
    return len(got) == len(want) and all(g is w for g, w in zip(got, want, strict=True))


async def opened(workers: int = 1, max_pending: int = 4) -> Features:
    stage = Features(
        Features.Config(window=WINDOW, workers=workers, max_pending=max_pending),
        TestContext(),
    )
    await stage.open()
    return stage


async def feed_then(
    batches: list[Batch], at: int, action: Callable[[], None]
) -> AsyncIterator[Batch]:
    """Yield `batches`, running `action` when the stage asks for batch number `at`."""
    for i, batch in enumerate(batches):
        if i == at:
            action()
        yield batch


async def test_pool_agrees_with_inline_with_one_submission_per_batch() -> None:
    stage = await opened(max_pending=3)
    assert stage.pool is not None
    assert len(stage.pool.worker_pids()) == 1  # started and warmed before any data
    try:
        inputs = batches(0)
        with_windows = 0
        pending_seen = []
        out = []
        async for batch in stage.process(feed(inputs)):
            out.append(batch)
            with_windows += bool(batch.derived)
            pending_seen.append(stage.ctx.gauge()["pending"])
    finally:
        await stage.close()
    want = await inline_records(0)
    assert records(out) == want
    assert same_batches(out, inputs)  # every batch passed on, in input order
    assert stage.pool.submissions == with_windows  # one per batch that completed windows
    assert with_windows < len(want)  # ... not one per window
    assert stage.ctx.gauge()["submissions"] == with_windows
    assert max(pending_seen) <= 3


async def test_a_sigkilled_worker_is_replaced_and_nothing_is_lost() -> None:
    stage = await opened(max_pending=6)
    assert stage.pool is not None
    victim = stage.pool.worker_pids()[0]
    try:
        with structlog.testing.capture_logs() as logs:
            source = feed_then(batches(1), 12, lambda: os.kill(victim, signal.SIGKILL))
            out = await collect(stage.process(source))
    finally:
        await stage.close()
    assert records(out) == await inline_records(1)
    assert stage.pool.restarts == 1
    assert stage.ctx.gauge()["pool_restarts"] == 1
    assert [e["event"] for e in logs].count(events.FEATURE_WORKER_CRASHED) == 1
    assert victim not in stage.pool.worker_pids()


async def test_a_quiet_source_does_not_hold_back_a_finished_batch() -> None:
    first, second = batches(5, rows=300, size=150)
    resume = asyncio.Event()

    async def source() -> AsyncIterator[Batch]:
        yield first
        await resume.wait()  # a source with nothing to say for a while
        yield second

    stage = await opened()
    try:
        stream = stage.process(source())
        async with asyncio.timeout(10):
            got = await anext(stream)  # arrives while the source is still quiet
        assert got is first
        assert got.derived
        resume.set()
        rest = await collect(stream)
    finally:
        await stage.close()
    assert same_batches(rest, [second])
    assert records([got, *rest]) == await inline_records(5, rows=300, size=150)


def crash(values: FloatArray, ts: FloatArray) -> FloatArray:
    """A worker that dies on every task, as a segfaulting extension would."""
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


class CrashingPool(FeaturePool):
    """The real pool machinery, running a task that kills its worker."""

    def submit(
        self, values: FloatArray, ts: FloatArray
    ) -> tuple[ProcessPoolExecutor, asyncio.Future[FloatArray]]:
        executor = self.executor
        self.submissions += 1
        return executor, asyncio.wrap_future(executor.submit(crash, values, ts))


async def test_a_batch_whose_retry_also_breaks_the_pool_is_computed_inline() -> None:
    pool = CrashingPool(1, WINDOW)
    stage = with_pool(pool, max_pending=2)
    inputs = batches(2, rows=150, size=40)
    try:
        out = await collect(stage.process(feed(inputs)))
    finally:
        await stage.close()
    assert records(out) == await inline_records(2, rows=150, size=40)
    assert pool.restarts >= 2
    assert pool.submissions <= 2 * len(inputs)  # one retry per batch at most


async def test_force_stops_waiting_on_a_stuck_pool_and_read_ahead_is_bounded() -> None:
    inputs = batches(3, size=60)
    stage = await opened(max_pending=3)
    assert stage.pool is not None
    stuck = stage.pool.worker_pids()[0]
    worker = stage.pool.executor._processes[stuck]
    os.kill(stuck, signal.SIGSTOP)  # the pool takes work and never answers
    pulled = 0
    third = asyncio.Event()

    async def source() -> AsyncIterator[Batch]:
        nonlocal pulled
        for batch in inputs:
            pulled += 1
            if pulled == 3:
                third.set()
            yield batch

    try:
        consumer = asyncio.create_task(collect(stage.process(source())))
        await third.wait()
        for _ in range(50):  # let the stage run as far as it would go
            await asyncio.sleep(0)
        assert pulled == 3  # three batches in flight, no more read
        assert stage.ctx.gauge()["pending"] == 3
        assert not consumer.done()
        levers(stage).lifetime.force.set()  # second SIGTERM
        async with asyncio.timeout(10):
            out = await consumer
    finally:
        if not levers(stage).lifetime.force.is_set():
            os.kill(stuck, signal.SIGKILL)  # the test failed early: unstick the pool
        await stage.close()
    assert same_batches(out, inputs)
    assert records(out) == await inline_records(3, size=60)
    worker.join(timeout=10)  # close() under force killed the stuck worker
    assert worker.exitcode == -signal.SIGKILL


class UnstartablePool(FeaturePool):
    """A pool whose processes cannot start, as in a sandbox without /dev/shm."""

    async def start(self) -> None:
        raise OSError(38, "Function not implemented")


def with_pool(pool: FeaturePool, max_pending: int = 4) -> Features:
    """A stage running on `pool` instead of the one it would build."""
    config = Features.Config(window=WINDOW, workers=pool.workers, max_pending=max_pending)
    stage = Features(config, TestContext())
    stage.pool = pool
    return stage


async def test_a_pool_that_cannot_start_degrades_to_inline_math() -> None:
    stage = with_pool(UnstartablePool(2, WINDOW))
    with structlog.testing.capture_logs() as logs:
        await stage.open()
    assert stage.pool is None
    assert stage.ctx.gauge()["workers"] == 0
    assert [(e["event"], e["where"]) for e in logs] == [(events.FEATURES_FAILED, "pool_start")]
    out = await collect(stage.process(feed(batches(4))))
    await stage.close()
    assert records(out) == await inline_records(4)


# -- the pool's processes end with the daemon, and ignore Ctrl-C (daemon.lifeline) -----------

ROOT = Path(__file__).resolve().parents[3]
PR_GET_PDEATHSIG = 2

OWNER = """
import asyncio, multiprocessing.forkserver as fs
from daemon.stages.features.pool import FeaturePool

async def main():
    pool = FeaturePool(2, 8)
    await pool.start()
    print(fs._forkserver._forkserver_pid, *pool.worker_pids(), flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def gone_within(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := [p for p in pids if running(p)]) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


def test_the_forkserver_and_its_workers_die_with_the_daemon() -> None:
    """SIGKILL of the pool's owner: the forkserver (which preloaded the lifeline) and then its
    workers are killed by the kernel, even stopped ones that could notice nothing themselves."""
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert owner.stdout is not None
        pids = [int(p) for p in owner.stdout.readline().split()]
        assert len(pids) == 3
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        owner.kill()
        owner.wait()
        assert not gone_within(pids, 3.0)
    finally:
        owner.kill()
        owner.wait()


async def test_workers_ignore_sigint_and_keep_computing() -> None:
    pool = FeaturePool(2, WINDOW)
    await pool.start()
    try:
        pids = pool.worker_pids()
        for pid in pids:
            os.kill(pid, signal.SIGINT)  # what Ctrl-C sends the whole process group
        await asyncio.sleep(0.2)
        assert all(running(p) for p in pids)
        values = np.arange(2 * WINDOW, dtype=np.float64).reshape(2, WINDOW)
        _, future = pool.submit(values, values)
        assert (await future).shape == (2, 8)
        assert pool.restarts == 0 and sorted(pool.worker_pids()) == sorted(pids)
    finally:
        await pool.close(wait=True)


def test_importing_the_lifeline_outside_a_forkserver_changes_nothing() -> None:
    """The registry imports every module; only the forkserver's preload may set the signal."""
    importlib.reload(lifeline)
    libc = ctypes.CDLL(None, use_errno=True)
    sig = ctypes.c_int(-1)
    assert libc.prctl(PR_GET_PDEATHSIG, ctypes.byref(sig), 0, 0, 0) == 0
    assert sig.value == 0


def test_a_child_whose_parent_died_before_prctl_exits_at_once() -> None:
    pid = os.fork()
    if pid == 0:  # the child: its "parent" is already someone else
        lifeline.die_with_parent(expected_parent=os.getppid() + 1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 1


def test_a_pool_worker_watches_the_daemon_when_its_parent_lingers() -> None:
    """Off Linux, or with a forkserver that outlives the daemon: the worker's watch thread
    sees the daemon gone within WATCH_S and exits."""
    fake_daemon = subprocess.Popen(["sleep", "0.3"])
    pid = os.fork()
    if pid == 0:
        lifeline.pool_worker_init(fake_daemon.pid)
        time.sleep(10)
        os._exit(0)
    fake_daemon.wait()  # reaped: its pid is free
    started = time.monotonic()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 1
    assert time.monotonic() - started < lifeline.WATCH_S + 1.5
