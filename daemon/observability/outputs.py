"""The destinations a log line can be written to, each able to say "not now" instead of blocking.

Why a class per kind: how a write avoids blocking depends on what the descriptor is. A regular
file never waits for a reader; a pipe, FIFO or terminal gets a private non-blocking open file
description (setting O_NONBLOCK on the inherited one would change it for the shell and every
other process sharing it); a socket takes MSG_DONTWAIT per call. What none of these fits
(a FIFO that cannot be reopened, no /proc) is written by the writer thread only, blocking there
and never in the caller. See logsink.py for how they are used.
"""

from __future__ import annotations

import contextlib
import io
import os
import select
import socket
import stat
from pathlib import Path
from typing import IO, Any


class Output:
    """`write(data)` returns the bytes written (0: it would block) or raises OSError;
    `direct`: the caller's thread may write (it cannot block)."""

    direct = True

    def write(self, data: bytes) -> int:
        raise NotImplementedError

    def wait_writable(self, timeout_s: float) -> None:
        """Return once a write may make progress, or after `timeout_s`."""

    def close(self) -> None:
        """Release what this output owns (never the process's own fds 1 and 2)."""


class FileOutput(Output):
    """A log file opened for append, unbuffered: each line is one write(2)."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh

    @classmethod
    def open(cls, path: str) -> FileOutput:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        return cls(p.open("ab", buffering=0))

    def write(self, data: bytes) -> int:
        """All of `data` or none of it: a short write (file size limit, full disk) is completed
        or cut off again, so the next line never lands glued to a fragment."""
        done = 0
        try:
            while done < len(data):
                done += self._fh.write(data[done:])
        except OSError:
            if done:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fh.fileno(), self._fh.tell() - done)
            raise
        return done

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._fh.close()


class StreamOutput(Output):
    """A Python stream without a descriptor (a test's captured stdout): in memory, whole."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, data: bytes) -> int:
        buffer = getattr(self._stream, "buffer", None)
        try:
            if buffer is not None:
                buffer.write(data)
                buffer.flush()
            else:
                self._stream.write(data.decode("utf-8", "replace"))
                self._stream.flush()
        except (ValueError, AttributeError) as exc:  # a closed stream, or none (sys.stdout None)
            raise OSError(str(exc)) from None
        return len(data)


class FdOutput(Output):
    """A descriptor: a regular file (written directly), a private non-blocking reopening of a
    pipe or terminal (`owned`), or, with `direct` False, one the writer thread blocks on."""

    def __init__(self, fd: int, *, owned: bool = False, direct: bool = True) -> None:
        self.fd, self._owned, self.direct = fd, owned, direct

    def write(self, data: bytes) -> int:
        try:
            return os.write(self.fd, data)
        except BlockingIOError:
            return 0

    def wait_writable(self, timeout_s: float) -> None:
        _poll_out(self.fd, timeout_s)

    def close(self) -> None:
        if self._owned:
            with contextlib.suppress(OSError):
                os.close(self.fd)


class SocketOutput(Output):
    """A stream socket (journald's stdout): MSG_DONTWAIT per send, the socket left as it is."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def write(self, data: bytes) -> int:
        try:
            return self._sock.send(data, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return 0

    def wait_writable(self, timeout_s: float) -> None:
        _poll_out(self._sock.fileno(), timeout_s)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()  # our duplicate of the descriptor


def stream_fd(stream: Any) -> int | None:
    """The descriptor behind a text stream, or None (an in-memory or missing stream)."""
    try:
        return int(stream.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


def output_for_fd(fd: int) -> Output:
    """The non-blocking way to write to `fd` that its kind allows (see the module docstring)."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return FdOutput(fd)  # closed: every write fails and is counted
    if stat.S_ISREG(mode):
        return FdOutput(fd)
    if stat.S_ISSOCK(mode):
        with contextlib.suppress(OSError):
            sock = socket.socket(fileno=os.dup(fd))
            if sock.type == socket.SOCK_STREAM:
                return SocketOutput(sock)
            sock.close()
        return FdOutput(fd, direct=False)
    flags = os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        private = os.open(f"/proc/self/fd/{fd}", flags)
    except OSError:  # no /proc, or a FIFO whose reader is gone: the writer thread blocks
        return FdOutput(fd, direct=False)
    return FdOutput(private, owned=True)


def _poll_out(fd: int, timeout_s: float) -> None:
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    with contextlib.suppress(OSError):
        poller.poll(int(timeout_s * 1000))
