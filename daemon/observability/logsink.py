"""Where rendered log lines go, without ever blocking the caller: the event loop logs too.

Why: a stdout that nobody reads (a pipe into a hung `ingestd tail`, a stopped journal reader, a
terminal on Ctrl-S) made a log call block in write(2), and with it the whole daemon, its
shutdown included. So:

- A line is written at once, by the caller, only when nothing is queued and the write cannot
  block: a log file (one O_APPEND write per line, as always), a pipe, FIFO or terminal reopened
  through /proc/self/fd with O_NONBLOCK (a private open file description: the flag does not
  leak to the shell or to the other processes sharing it), a socket (journald's stream) written
  with MSG_DONTWAIT. In the common case the line is out when the call returns.
- What cannot go out at once is queued, up to `BUFFER_BYTES`, and a writer thread writes it in
  order as the reader takes it. A line is queued whole or dropped whole, and the rest of a
  partly written line goes out before anything else: no line is torn or interleaved.
- With the queue full, new lines are dropped and counted (`dropped`); once the queue has
  drained, one `log_dropped` line says how many.
- `close(timeout_s)` waits at most that long for the queue (the shutdown ends on time even if
  nobody reads again); what is left is counted as dropped.
- `reopen()` opens the log file by name *before* the old handle is retired, so after
  logrotate's rename + create no line is lost or written twice. A handle the writer thread is
  using is closed only after its write (its descriptor number must not be reused under it).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections import deque
from typing import Final

import structlog

from daemon.observability import events
from daemon.observability.outputs import (
    FileOutput,
    Output,
    StreamOutput,
    output_for_fd,
    stream_fd,
)

BUFFER_BYTES: Final = 1024 * 1024  # lines queued while the destination does not take them
CLOSE_TIMEOUT_S: Final = 2.0  # how long `close` waits for the queue to drain
_POLL_S: Final = 0.5  # the writer's longest wait for a blocked destination


class LogSink:
    """Where rendered lines go: stdout (looked up per write, so a swapped `sys.stdout` or a
    redirected fd 1 is honoured) or a file opened for append. Thread-safe; never raises on
    write, never blocks on a destination that does not read."""

    def __init__(self, path: str = "", buffer_bytes: int = BUFFER_BYTES) -> None:
        self._lock = threading.Condition(threading.Lock())
        self.path = path
        self._file: FileOutput | None = FileOutput.open(path) if path else None
        self._closed = False
        self._fd_outputs: dict[int, tuple[tuple[int, int, int], Output]] = {}
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._limit = buffer_bytes
        self._writer: threading.Thread | None = None
        self._writing: Output | None = None  # what the writer thread is writing to
        self._retired: list[Output] = []  # to close once the writer is done with them
        self.failed_writes = 0  # lines a destination refused (an error, not a full pipe)
        self.dropped = 0  # lines dropped: the queue was full, or left over at close
        self._unreported = 0

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, line: bytes) -> None:
        """Write one rendered line now, or queue it, or drop and count it. A logging call must
        never break or stall its caller (a full disk or a blocked reader must not stop the
        pipeline): a failed write goes to fd 2 as a last resort, if that does not block."""
        with self._lock:
            out = self._output()
            if self._queue or not out.direct:
                self._enqueue(line)
                return
            try:
                done = out.write(line)
            except OSError:
                self._failed(line, out)
                return
            if done < len(line):
                self._enqueue(line[done:], whole=False)

    def flush(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for the queued lines to be written; True if none is left."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._queue and (left := deadline - time.monotonic()) > 0:
                self._lock.wait(left)
            return not self._queue

    def reopen(self) -> None:
        """Reopen the file by name (after logrotate renamed it). No-op in stdout mode.

        Call it from the event loop (`loop.add_signal_handler`) or any thread, never from a
        `signal.signal` handler: that could interrupt a write holding the lock."""
        if self.path and not self._closed:
            self.retarget(self.path)

    def retarget(self, path: str) -> None:
        """Switch to `path` (stdout for ""), e.g. for a reload that changes `log_file`. If it
        cannot be opened, keep writing where we were and say so: losing the log is worse."""
        try:
            new = FileOutput.open(path) if path else None
        except OSError as exc:
            structlog.get_logger(__name__).error(
                events.LOG_REOPEN_FAILED, path=path, error=str(exc)
            )
            return
        with self._lock:
            old, self._file, self.path, self._closed = self._file, new, path, False
            self._retire(old)

    def reconfigure(self, level: str, log_file: str) -> LogSink:
        """Apply a reloaded `[daemon] log_level` / `log_file`; returns the (same) sink."""
        from daemon.observability.logging import reconfigure  # noqa: PLC0415  # it imports us

        return reconfigure(level, log_file)

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Write what is queued within `timeout_s` (the rest is dropped and counted), then
        close the file (later lines go to stderr) and the descriptors opened for stdout (a
        later line opens them again)."""
        self.flush(timeout_s)
        with self._lock:
            self._drop_queue()
            old, self._file, self._closed = self._file, None, bool(self.path)
            self._retire(old)
            for _, out in self._fd_outputs.values():
                self._retire(out)
            self._fd_outputs.clear()

    # -- under the lock ----------------------------------------------------------------------
    def _output(self) -> Output:
        if self._file is not None:
            return self._file
        stream = sys.stderr if self._closed else sys.stdout
        fd = stream_fd(stream)
        if fd is None:
            return StreamOutput(stream)  # an in-memory stream (a test's capture): cannot block
        return self._for_fd(fd)

    def _for_fd(self, fd: int) -> Output:
        """The output for `fd`, reused while fd still names the same file."""
        try:
            st = os.fstat(fd)
            key = (fd, st.st_dev, st.st_ino)
        except OSError:
            key = (fd, -1, -1)
        cached = self._fd_outputs.get(fd)
        if cached is not None and cached[0] == key:
            return cached[1]
        out = output_for_fd(fd)
        self._fd_outputs[fd] = (key, out)
        if cached is not None:
            self._retire(cached[1])
        return out

    def _enqueue(self, data: bytes, whole: bool = True) -> None:
        """Queue `data`; a whole line that does not fit is dropped. The rest of a partly written
        line is always kept: dropping it would leave a torn line for the reader."""
        if whole and self._queued_bytes + len(data) > self._limit:
            self.dropped += 1
            self._unreported += 1
            return
        if whole:
            self._queue.append(data)
        else:
            self._queue.appendleft(data)
        self._queued_bytes += len(data)
        if self._writer is None or not self._writer.is_alive():
            self._writer = threading.Thread(target=self._drain, name="ingestd-log", daemon=True)
            self._writer.start()
        self._lock.notify_all()

    def _drop_queue(self) -> None:
        """Forget what is queued (counted as dropped), but the line being written: the writer
        finishes it or counts it."""
        keep = 1 if self._queue and self._writing is not None else 0
        while len(self._queue) > keep:
            self._queued_bytes -= len(self._queue.pop())
            self.dropped += 1

    def _failed(self, line: bytes, out: Output) -> None:
        self.failed_writes += 1
        fallback = self._for_fd(2)
        if fallback is not out:
            with contextlib.suppress(OSError):
                fallback.write(line)

    def _retire(self, out: Output | None) -> None:
        if out is None:
            return
        if out is self._writing:
            self._retired.append(out)
        else:
            out.close()

    # -- the writer thread -------------------------------------------------------------------
    def _drain(self) -> None:
        """Write the queue in order, waiting (outside the lock) while the destination is full;
        report the lines dropped meanwhile once it has drained."""
        while True:
            with self._lock:
                while not self._queue:
                    if self._unreported:
                        break
                    self._lock.wait()
                if not self._queue:
                    report, self._unreported = self._unreported, 0
                    total = self.dropped
                else:
                    report = 0
                    data, out = self._queue[0], self._output()
                    self._writing = out
            if report:
                structlog.get_logger(__name__).warning(
                    events.LOG_DROPPED, dropped=report, total=total
                )
                continue
            try:
                done = out.write(data)
            except OSError:
                done = -1
            with self._lock:
                self._writing = None
                for retired in self._retired:
                    retired.close()
                self._retired.clear()
                if self._queue and self._queue[0] is data:
                    self._advance(data, done, out)
                    self._lock.notify_all()
            if done == 0:
                out.wait_writable(_POLL_S)

    def _advance(self, data: bytes, done: int, out: Output) -> None:
        if done < 0:  # the destination refused it: count it, try fd 2, go on
            self._queue.popleft()
            self._queued_bytes -= len(data)
            self._failed(data, out)
        elif done == len(data):
            self._queue.popleft()
            self._queued_bytes -= done
        elif done > 0:
            self._queue[0] = data[done:]
            self._queued_bytes -= done
