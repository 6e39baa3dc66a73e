"""The dead-letter file: rejected input, one JSON line each, with `reason`, `source`, `raw`.

Rejections are rare by nature, so writes are plain synchronous appends flushed at once: a
rejected reading must be on disk before it is counted. What is rejected together (a batch a sink
refused, a file chunk's malformed lines) is written together and fsynced once: one fsync per
rejection cost ~225 us here, so a refused batch of 8,192 readings held the event loop ~1.8 s
(2,000 rejections: 0.45 s one by one, 0.007 s together). The file is created on the first
rejection, never before (a clean run writes nothing here). Entries that are not readings (a torn
line a sink found, a corrupt state file) are written the same way; counting is the caller's
(`ComponentContext.reject` counts, `ComponentContext.quarantine` does not).

Like the sinks' files, this one must survive what operators do to it. A torn last line left by a
killed run is cut off when the file is first opened and kept as an entry of its own, so every
line stays whole JSON. A file deleted or replaced under the daemon (`rm -rf data/`) is noticed
after each write (one `stat`: `durable.moved`): it is recreated, with its directory, the entries
written again there and `file_reopened` logged, so `write_all` returns only once its entries are
synced into the file at `path`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import stat
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import IO, Any

import orjson
import structlog

from daemon.durable import FileId, file_id, find_torn_tail, moved, repair_tail

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE
BACKLOG_BYTES = 16 * 1024 * 1024  # rejections held in memory while the disk refuses them
_ATTEMPTS = 3  # writes into a file that keeps vanishing before it is an error


@dataclass(frozen=True, slots=True)
class DeadLetterEntry:
    """One rejected input: `raw` as received (a str line, or a record), plus extra fields."""

    reason: str
    source: str
    raw: Any
    fields: Mapping[str, Any] = field(default_factory=dict)


class DeadLetter:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fh: IO[bytes] | None = None
        self._file: FileId | None = None
        self.count = 0  # entries written
        self.dropped = 0  # entries lost: the disk refused them longer than the backlog holds
        self._backlog: deque[bytes] = deque()
        self._backlog_bytes = 0
        self._failing = False
        self._log: Any = structlog.get_logger("dead_letter")

    def write(self, reason: str, source: str, raw: Any, **fields: Any) -> None:
        """Append one rejection."""
        self.write_all([DeadLetterEntry(reason, source, raw, fields)])

    def write_all(self, rejections: Iterable[DeadLetterEntry]) -> None:
        """Append entries together, synced (one fsync) into the file at `path` before this
        returns. Never raises: when the disk refuses (full, read-only, gone), the lines wait in
        memory (at most `BACKLOG_BYTES`, the oldest dropped and counted past that), logged
        once, and go first at the next write or `retry()`: a full disk does not stop the
        daemon, and what is lost is counted (`dropped`), never silent."""
        ts = _now()
        for entry in rejections:
            line = _line(entry, ts)
            self._backlog.append(line)
            self._backlog_bytes += len(line)
        if self._backlog:
            self._drain()

    def retry(self) -> None:
        """Write what a refused write left waiting (called periodically by the pipeline)."""
        if self._backlog:
            self._drain()

    @property
    def pending(self) -> int:
        return len(self._backlog)

    def _drain(self) -> None:
        try:
            self._append(b"".join(self._backlog))
        except OSError as exc:
            if not self._failing:
                self._log.error(
                    _events().DEAD_LETTER_FAILED,
                    path=str(self.path),
                    error=str(exc),
                    pending=len(self._backlog),
                )
            self._failing = True
            while self._backlog_bytes > BACKLOG_BYTES and self._backlog:
                self._backlog_bytes -= len(self._backlog.popleft())
                self.dropped += 1
            return
        self.count += len(self._backlog)
        self._backlog.clear()
        self._backlog_bytes = 0
        if self._failing:
            self._failing = False
            self._log.info(
                _events().DEAD_LETTER_RECOVERED, path=str(self.path), dropped=self.dropped
            )

    def _append(self, data: bytes) -> None:
        self._let_go_if_moved()  # since the last write: then nothing goes into the old file
        for _ in range(_ATTEMPTS):
            fh = self._open()
            start = fh.seek(0, os.SEEK_END) if self._file is not None else 0
            try:
                fh.write(data)
                fh.flush()
                if self._file is not None:  # a device or pipe: nothing to sync or to check
                    os.fsync(fh.fileno())
            except OSError:
                self._undo(fh, start)
                raise
            if not self._let_go_if_moved():
                return
        raise OSError(f"{self.path} was deleted or replaced during each of {_ATTEMPTS} writes")

    def _undo(self, fh: IO[bytes], start: int) -> None:
        """After a refused write: cut what part of it landed, so no torn line stays behind
        (a truncate frees space, so it works on a full disk too), and let the file go."""
        with contextlib.suppress(OSError):
            if self._file is not None:
                os.ftruncate(fh.fileno(), start)
        self._fh, self._file = None, None
        with contextlib.suppress(OSError):
            fh.close()

    def close(self) -> None:
        if self._fh is not None:
            fh, self._fh, self._file = self._fh, None, None
            fh.close()

    def _let_go_if_moved(self) -> bool:
        """Whether the open (regular) file left the path; if so it is closed, logged, and the
        next `_open` recreates it (and its directory)."""
        cause = moved(self.path, self._file) if self._file is not None else None
        if cause is not None:
            self._log.warning(_events().FILE_REOPENED, path=str(self.path), cause=cause)
            self.close()
        return cause is not None

    def _open(self) -> IO[bytes]:
        if self._fh is not None:
            return self._fh
        self.path.parent.mkdir(parents=True, exist_ok=True)
        note = self._repair_tail()
        fh = self.path.open("ab")
        status = os.fstat(fh.fileno())
        # Only a regular file is synced and checked (not a /dev/null dead-letter file).
        self._fh, self._file = fh, file_id(status) if stat.S_ISREG(status.st_mode) else None
        if note is not None:  # synced by the write that follows
            fh.write(note)
        return fh

    def _repair_tail(self) -> bytes | None:
        """Cut a torn last line off; the entry that keeps it (written first), or None."""
        tail = find_torn_tail(self.path)
        if tail is None or not tail.whole or not repair_tail(self.path, tail):
            return None  # an overlong fragment is not one this file tore: left alone
        reason = f"torn line at {self.path}:{tail.offset} after a crash"
        raw = tail.fragment.decode("utf-8", errors="replace")
        self._log.warning(
            _events().TORN_LINE_REPAIRED,
            path=str(self.path),
            offset=tail.offset,
            bytes=len(tail.fragment),
            action="cut",
        )
        extra = {"path": str(self.path), "offset": tail.offset, "bytes": len(tail.fragment)}
        return _line(DeadLetterEntry(reason, "dead_letter", raw, extra), _now())


def _events() -> ModuleType:
    # Imported on use: daemon.observability imports daemon.runtime, which imports this module.
    from daemon.observability import events  # noqa: PLC0415 - import cycle

    return events


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


def _line(entry: DeadLetterEntry, ts: str) -> bytes:
    record = {"ts": ts, "reason": entry.reason, "source": entry.source, "raw": entry.raw}
    return orjson.dumps(record | dict(entry.fields), option=_OPTIONS, default=str)
