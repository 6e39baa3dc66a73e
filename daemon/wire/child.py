"""One forked process that encodes batches to wire bytes, in memory shared with the daemon.

The child is forked (~7 ms; a forkserver or spawn start is 0.3-0.5 s of imports), so it has the
encoder, its tables (warmed just before: `encode.warm_up`) and the sensor table already. Signals
are blocked around the fork and ignored in the child; it keeps no inherited descriptor but its
pipe and exits when that closes, so a SIGTERM to the whole process group reaches the daemon's
handlers once, and a dead daemon leaves no encoder behind: the pipe's EOF ends it, and so does
the kernel's SIGKILL when the daemon dies (`daemon.lifeline`), even mid-batch.

Per batch the daemon has copied the columns into a shared input slot; a small message (the slot,
the columns' layout, the sensors interned since the last batch, derived records) goes over the
pipe; the child encodes into the shared output slot and replies with the length. Bulk data never
crosses the pipe: on these VMs a pipe moves ~0.5 GB/s. Replies wake the event loop directly (a
reader on the pipe), with no thread in between. The child never writes to stdout or stderr:
their locks may have been held by a daemon thread at the fork.
"""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import multiprocessing
import os
import pickle
import signal
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Final

import numpy as np

from daemon import lifeline
from daemon.batch import Batch, qualities_from_bytes
from daemon.sensors import SENSORS
from daemon.wire.encode import encode_batch

Reply = tuple[str, Any]  # ("ok", length) | ("failed", why) | ("too_big", length)
Layout = list[tuple[str, int, int]]  # (dtype, offset, length) of each column in the input
_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class EncoderChild:
    """A child and the replies it owes, oldest first. `on_death` runs (on the loop) when its
    pipe breaks, after every reply it owed has failed with EOFError."""

    def __init__(
        self, shared: mmap.mmap, output: mmap.mmap, slot_bytes: int, on_death: Callable[[], None]
    ) -> None:
        self._shared, self._output, self._slot_bytes = shared, output, slot_bytes
        self._on_death = on_death
        self._conn: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self._sensors_sent = 0  # sensor table entries the child knows
        self._waiting: deque[asyncio.Future[Reply]] = deque()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def alive(self) -> bool:
        return self._conn is not None

    def start(self) -> None:
        ctx = multiprocessing.get_context("fork")
        parent, child = ctx.Pipe(duplex=True)
        process = ctx.Process(
            target=_serve,
            args=(child, parent, self._shared, self._output, self._slot_bytes),
            kwargs={"daemon_pid": os.getpid()},
            name="ingestd-encoder",
            daemon=True,
        )
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        child.close()
        self._conn, self._process = parent, process
        self._sensors_sent = len(SENSORS)  # the child's copy of the table is this long
        asyncio.get_running_loop().add_reader(parent.fileno(), self._on_replies)

    def submit(self, slot: int, batch: Batch, layout: Layout) -> asyncio.Future[Reply] | None:
        """Ask for `batch` (its columns already in `slot`); None if the child is gone."""
        conn = self._conn
        if conn is None:
            return None
        size = len(SENSORS)
        new = [(SENSORS.sensor_id(i), SENSORS.unit(i)) for i in range(self._sensors_sent, size)]
        request = (slot, new, tuple(batch.columns), layout, batch.derived)
        try:
            message = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # a derived record pickle refuses: the sink encodes (and judges) it
            return None
        try:
            conn.send_bytes(message)
        except OSError:
            self._died()
            return None
        self._sensors_sent = size
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        return future

    async def close(self) -> None:
        """Stop the child (it exits when its pipe closes) and wait a little for it."""
        process = self._detach()
        if process is not None:
            await asyncio.to_thread(process.join, 2.0)
            if process.is_alive():
                process.kill()
                await asyncio.to_thread(process.join, 2.0)
            process.close()

    def _on_replies(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            while conn.poll():
                reply: Reply = pickle.loads(conn.recv_bytes())
                if self._waiting:
                    self._waiting.popleft().set_result(reply)
        except (EOFError, OSError):
            self._died()

    def _died(self) -> None:
        process = self._detach()
        if process is not None:
            process.kill()
            process.join(1.0)
            process.close()
        self._on_death()

    def _detach(self) -> multiprocessing.process.BaseProcess | None:
        """Forget the child: close the pipe, fail what it owed. Returns the process to reap."""
        conn, process = self._conn, self._process
        self._conn = self._process = None
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(EOFError("the encoder process is gone"))
        if conn is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing already
                asyncio.get_running_loop().remove_reader(conn.fileno())
            conn.close()
        return process


def copy_in(batch: Batch, shared: mmap.mmap, base: int, room: int) -> Layout | None:
    """Copy the batch's columns into `shared` at `base`; their layout, or None past `room`."""
    layout: Layout = []
    at = base
    # `stale` as it is (bool), or, when some rows are interpolated, the quality codes (u1): the
    # child tells them apart by dtype, so the common batch costs no conversion.
    quality = batch.stale if batch.interpolated is None else batch.quality_bytes()
    columns = (batch.sensor, batch.seq, batch.ts, batch.value, quality)
    for array in (*columns, *batch.columns.values()):
        a = np.ascontiguousarray(array)
        if a.dtype.hasobject or at + a.nbytes > base + room:  # no shared memory for objects
            return None
        np.frombuffer(shared, dtype=a.dtype, count=a.shape[0], offset=at)[:] = a
        layout.append((a.dtype.str, at, a.shape[0]))
        at += -(-a.nbytes // 8) * 8  # keep every column 8-aligned
    return layout


def _serve(
    conn: Connection,
    parents_end: Connection,
    shared: mmap.mmap,
    output: mmap.mmap,
    slot: int,
    *,
    daemon_pid: int,
) -> None:
    """The child: encode what arrives, in order, until the pipe closes; then leave at once
    (`os._exit`): returning into multiprocessing would flush the stdio buffers it inherited
    from the daemon (a log line written twice) and print any traceback to the daemon's stderr.
    A failure ends the child; the daemon sees its pipe close and replaces it."""
    try:
        lifeline.die_with_parent(daemon_pid)
        _encode_until_closed(conn, parents_end, shared, output, slot)
    except BaseException:  # nothing may escape into the daemon's streams
        os._exit(1)
    os._exit(0)


def _encode_until_closed(
    conn: Connection, parents_end: Connection, shared: mmap.mmap, output: mmap.mmap, slot: int
) -> None:
    parents_end.close()  # else the pipe never closes: this copy of the daemon's end stays open
    keep = conn.fileno()  # nor any other inherited descriptor: another child's pipe, a
    os.closerange(3, keep)  # listening socket, a file the daemon closes on reload
    os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)
    for sig in _SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
    while True:
        try:
            index, new, names, layout, derived = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        for sensor_id, unit in new:
            SENSORS.intern(sensor_id, unit)
        arrays = [np.frombuffer(shared, dtype=d, count=n, offset=at) for d, at, n in layout]
        sensor, seq, ts, value, quality, *columns = arrays
        named = dict(zip(names, columns, strict=True))
        stale, interpolated = (
            (quality, None) if quality.dtype == np.bool_ else qualities_from_bytes(quality)
        )
        try:
            batch = Batch(sensor, seq, ts, value, stale, named, derived, interpolated=interpolated)
            data = encode_batch(batch)
        except Exception as exc:  # any failure: the sink encodes it again and reports it
            reply: Reply = ("failed", repr(exc))
        else:
            if len(data) <= slot:
                output[index * slot : index * slot + len(data)] = data
                reply = ("ok", len(data))
            else:
                reply = ("too_big", len(data))
        try:
            conn.send_bytes(pickle.dumps(reply))
        except OSError:
            return
