"""A durable on-disk queue of batches for one sink: where readings wait while the sink is down.

Why this design: the spool is the last line of "nothing is lost", so every choice favours
surviving a crash at any instant, and saying so whenever something was lost anyway.

- Append-only segment files `NNNNNNNNNN.open` (the one being written) sealed by atomic rename to
  `NNNNNNNNNN.seg` once they pass `segment_bytes` or on close; the directory is fsynced after
  creations, renames and deletions. Each appended batch is fsynced before `append` returns.
- Bounded: past `max_bytes` on disk (0: `segments.auto_cap`) `append` raises `SpoolFull` (an
  ENOSPC, like a full disk); the caller decides to wait. An empty spool takes one batch whatever
  its size, so one big batch cannot wedge it. `over_cap` (a forced exit) ignores the cap: losing
  in-flight batches would be worse than overshooting by them.
- Records are framed with a magic and a CRC (`records.py`). Garbage — a bad CRC, the torn tail a
  crash left, a GiB of zeros — is skipped in bounded memory, its first MiB copied to
  `quarantine/`, counted in `spool_corrupt` and logged as `spool_record_corrupt`.
- Whatever is found at `open()` is checked against the cursor (`adopt.py`); a segment that
  vanishes, shrinks or turns into something else later is noticed when it is read or written
  (`spool_lost`). Nothing on disk makes a call raise except a failed `append`.
- The consumer takes the oldest record with `peek()` and acknowledges it with `ack()`; the
  position is persisted (`cursor.py`) on every acknowledgement, so a restart redelivers at most
  the record that was in progress. Fully acknowledged segments are deleted.
- Segments found at `open()` were left by an earlier run: their batches come back `inherited`.
  A spool reopened within the same run (a reload) passes `own_from` so its segments stay its own.

Not thread-safe: one caller at a time. Everything but decoding is plain file I/O that the
guarded sink runs in a thread: `load_head()` does the reading and skipping, then `peek()` in the
event loop only decodes (decoding interns sensor ids). With `deferred` reports, what the spool
found is logged and counted when the caller says (`reports.deliver()`), on the event loop.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from daemon.batch import Batch
from daemon.counters import Counters
from daemon.durable import fsync_dir
from daemon.observability import events
from daemon.resilience.adopt import adopt
from daemon.resilience.codec import decode_spooled, encode_batch, payload_readings
from daemon.resilience.cursor import CursorFile
from daemon.resilience.quarantine import Quarantine
from daemon.resilience.reader import HeadReader, RawHead
from daemon.resilience.records import frame
from daemon.resilience.report import Reports
from daemon.resilience.segments import Segment, auto_cap


class SpoolFull(OSError):
    """The spool reached its `max_bytes`: nothing was written."""


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    """The oldest unacknowledged batch; `inherited` if an earlier run spooled it, `counted`
    unless it is a second sink's copy of a batch whose count another spool carries."""

    batch: Batch
    inherited: bool
    readings: int
    segment: int
    start: int
    end: int
    counted: bool = True


class Spool:
    def __init__(
        self,
        directory: str | Path,
        *,
        segment_bytes: int,
        counters: Counters,
        log: Any = None,
        label: str = "",
        own_from: int | None = None,
        max_bytes: int = 0,
        deferred: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.label = label  # the owning sink's label, for log lines
        self.reports = Reports(
            log if log is not None else structlog.get_logger(__name__), counters, deferred=deferred
        )
        self._max_bytes = max_bytes
        self.cap = max_bytes or 1 << 30  # set at open() when automatic
        self._own_from_arg = own_from
        self.own_from = 0  # segments numbered from here on were written in this run
        self._cursor = CursorFile(self.directory / "cursor")
        quarantine = Quarantine(self.directory, self.reports, label)
        self._segments: list[Segment] = []  # oldest first; [0] is the one being read
        self._reader = HeadReader(
            self.directory,
            self._segments,
            self._cursor,
            quarantine,
            next_number=lambda: self._next_number,
            finished=self._finished,
        )
        self._next_number = 0
        self._write_fd: int | None = None  # fd of _segments[-1] while it is being written
        self._head: SpooledBatch | None = None

    # -- state -------------------------------------------------------------------------------

    @property
    def pending_batches(self) -> int:
        return sum(s.batches for s in self._segments)

    @property
    def pending_readings(self) -> int:
        return sum(s.readings for s in self._segments)

    @property
    def pending_bytes(self) -> int:
        """Unacknowledged bytes on disk, garbage not yet skipped included (0 = nothing to read)."""
        return self.disk_bytes - (self._reader.pos if self._segments else 0)

    @property
    def disk_bytes(self) -> int:
        """What the segments take on disk (the cap applies to this)."""
        return sum(s.size for s in self._segments)

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self) -> None:
        """Adopt what an earlier run left (`adopt.py`): every surprise is logged and counted,
        none raises. A directory that cannot be created leaves the spool empty; appends then
        fail (and are retried by the caller) while the sink may still write directly."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.reports.warning(events.SPOOL_WRITE_FAILED, sink=self.label, error=str(exc))
        found = adopt(self.directory, self._cursor, self._reader.quarantine, self.reports)
        self._segments[:] = found.segments
        self._reader.pos = found.pos
        last = self._segments[-1].number + 1 if self._segments else 0
        self.own_from = self._own_from_arg if self._own_from_arg is not None else last
        self._next_number = max(found.next_number, self.own_from)
        if not self._max_bytes:
            self.cap = auto_cap(self.directory, self.disk_bytes)

    def close(self) -> None:
        """Seal the segment being written and release files. Pending batches stay on disk."""
        if self._write_fd is not None:
            self._seal(self._segments[-1])
        self._reader.close()
        self._cursor.close()
        self._head = None

    # -- writing -----------------------------------------------------------------------------

    def append(self, batch: Batch) -> None:
        """Durably append `batch` (encode + `append_payload`)."""
        self.append_payload(encode_batch(batch))

    def append_payload(self, payload: bytes, *, over_cap: bool = False) -> None:
        """Durably append an `encode_batch` payload: written and fsynced before returning.
        Raises `SpoolFull` at the cap (unless `over_cap`), OSError from the disk."""
        record = frame(payload) + payload
        used = self.disk_bytes
        if not over_cap and used and used + len(record) > self.cap:
            raise SpoolFull(errno.ENOSPC, f"spool_max_bytes ({self.cap}) reached")
        if self._write_fd is None:
            self._start_segment()
        assert self._write_fd is not None
        seg = self._segments[-1]
        try:
            written = 0
            while written < len(record):
                written += os.write(self._write_fd, record[written:])
            os.fsync(self._write_fd)
            gone = os.fstat(self._write_fd).st_nlink == 0
        except OSError:
            try:
                os.ftruncate(self._write_fd, seg.size)  # no half record left to trip over
            except OSError:
                self._close_writer()  # the next append starts a fresh segment
            raise
        if gone:  # the file (or the whole directory) was deleted under us
            self._close_writer()
            self._reader.lost(seg, "segment deleted while being written")
            raise OSError(errno.ENOENT, "spool segment deleted while being written", seg.name)
        seg.size += len(record)
        seg.batches += 1
        seg.readings += payload_readings(payload)
        if seg.size >= self.segment_bytes:
            self._seal(seg)

    def _start_segment(self) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        for _ in range(8):
            seg = Segment(self._next_number, sealed=False, size=0)
            try:
                fd = os.open(self.directory / seg.name, flags, 0o644)
            except FileExistsError:  # something took the name: never write into it
                self._next_number += 1
                continue
            except FileNotFoundError:  # the directory was deleted: make it again
                self.directory.mkdir(parents=True, exist_ok=True)
                continue
            self._next_number += 1  # taken only once the file exists: no gap in the numbers
            self._write_fd = fd
            self._segments.append(seg)
            fsync_dir(self.directory)
            return
        raise OSError(errno.EEXIST, "no free segment name", str(self.directory))

    def _seal(self, seg: Segment) -> None:
        self._close_writer()
        if seg.size == 0:  # an append failed into a fresh segment: nothing to keep
            self._reader.forget(seg)
            return
        old = self.directory / seg.name
        try:
            old.rename(self.directory / f"{seg.number:010d}.seg")
            seg.sealed = True
            fsync_dir(self.directory)
        except FileNotFoundError:
            self._reader.lost(seg, "segment deleted before it was sealed")
        except OSError:
            pass  # it stays `.open` and is read as such; the next open seals it

    def _close_writer(self) -> None:
        if self._write_fd is not None:
            os.close(self._write_fd)
            self._write_fd = None

    # -- reading -----------------------------------------------------------------------------

    def load_head(self) -> RawHead | None:
        """Read up to the oldest valid record (blocking file I/O; safe in a worker thread):
        garbage is quarantined, counted and skipped, vanished segments reported."""
        return self._reader.load()

    def _finished(self, seg: Segment) -> None:
        """The reader is done with `seg`; if it is the one being written, stop writing it."""
        if self._write_fd is not None and self._segments and self._segments[-1] is seg:
            self._close_writer()

    def peek(self) -> SpooledBatch | None:
        """The oldest unacknowledged batch (the same one until it is acknowledged), or None."""
        if self._head is None:
            raw = self.load_head()
            if raw is None:
                return None
            batch, copy = decode_spooled(raw.payload)  # validated by the reader
            inherited = raw.segment < self.own_from
            batch.replayed = inherited
            self._head = SpooledBatch(
                batch, inherited, len(batch), raw.segment, raw.start, raw.end, not copy
            )
        return self._head

    def ack(self, item: SpooledBatch) -> None:
        """`item` (the current `peek()`) was delivered: persist the position past it."""
        if item is not self._head:
            raise ValueError("ack() takes the batch peek() returned, once")
        self._head = None
        self._reader.ack(item.segment, item.readings, item.end)
