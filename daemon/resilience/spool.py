"""A durable on-disk queue of batches for one sink: where readings wait while the sink is down.

Why this design: the spool is the last line of "nothing is lost", so every choice favours
surviving a crash at any instant over speed.

- Append-only segment files `NNNNNNNNNN.open` (the one being written) sealed by atomic rename to
  `NNNNNNNNNN.seg` once they pass `segment_bytes` or on close; the directory is fsynced after
  creations and renames. Each appended batch is fsynced before `append` returns.
- Records are framed with a magic and a CRC (`records.py`). Garbage — a bad CRC, the torn tail a
  crash left, anything else — is skipped, its bytes copied to `quarantine/`, counted in
  `counters.spool_corrupt` and logged once as `spool_record_corrupt`; reading resumes at the next
  valid record. Never an exception, so a bad disk block cannot crash-loop the daemon.
- The consumer takes the oldest record with `peek()` and acknowledges it with `ack()`; the
  position is persisted (`cursor.py`) on every acknowledgement, so a restart redelivers at most
  the record that was in progress. Fully acknowledged segments are deleted.
- Segments found at `open()` were left by an earlier run: their batches come back `inherited`
  (and `batch.replayed`). A spool reopened within the same run (a config reload) passes
  `own_from` back in so that this run's segments stay its own.

Not thread-safe: one caller at a time. (The guarded sink runs the fsync-bound `append_payload`
and `ack` in a worker thread, but `peek` in the loop: decoding interns sensor ids.)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from daemon.batch import Batch
from daemon.counters import Counters
from daemon.durable import fsync_dir
from daemon.observability import events
from daemon.resilience.codec import PayloadError, decode_batch, encode_batch, payload_readings
from daemon.resilience.cursor import CursorFile, Position
from daemon.resilience.records import Corrupt, Record, frame, read_at

_SEGMENT_NAME = re.compile(r"^(\d{10})\.(open|seg)$")


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    """The oldest unacknowledged batch; `inherited` if an earlier run spooled it."""

    batch: Batch
    inherited: bool
    readings: int
    segment: int
    start: int
    end: int


@dataclass(slots=True)
class _Segment:
    number: int
    sealed: bool
    size: int

    @property
    def name(self) -> str:
        return f"{self.number:010d}.{'seg' if self.sealed else 'open'}"


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
    ) -> None:
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self._counters = counters
        self._log = log if log is not None else structlog.get_logger(__name__)
        self.label = label  # the owning sink's label, for log lines
        self._own_from_arg = own_from
        self.own_from = 0  # segments numbered from here on were written in this run
        self._cursor = CursorFile(self.directory / "cursor")
        self._segments: list[_Segment] = []  # oldest first; [0] is the one being read
        self._pos = 0  # read offset in _segments[0]
        self._next_number = 0
        self._read_fd: tuple[int, int] | None = None  # (segment number, fd)
        self._write_fd: int | None = None  # fd of _segments[-1] while it is unsealed
        self._head: SpooledBatch | None = None
        self._batches = 0
        self._readings = 0
        self._bytes = 0

    # -- state -------------------------------------------------------------------------------

    @property
    def pending_batches(self) -> int:
        return self._batches

    @property
    def pending_readings(self) -> int:
        return self._readings

    @property
    def pending_bytes(self) -> int:
        """Unacknowledged bytes on disk, garbage not yet skipped included (0 = nothing to read)."""
        return self._bytes

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self) -> None:
        """Adopt what an earlier run left: seal its open segment, drop acknowledged ones, count
        the pending batches (verifying every CRC; nothing is quarantined until replay)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        cursor = self._cursor.load()
        found: list[_Segment] = []
        renamed = False
        for entry in os.scandir(self.directory):
            m = _SEGMENT_NAME.match(entry.name)
            if m is None:
                continue
            seg = _Segment(int(m.group(1)), m.group(2) == "seg", entry.stat().st_size)
            if seg.number < cursor.segment:
                Path(entry.path).unlink()  # acknowledged; its deletion did not survive a crash
                continue
            if not seg.sealed:
                seg.sealed = True
                Path(entry.path).rename(self.directory / seg.name)
                renamed = True
            found.append(seg)
        if renamed:
            fsync_dir(self.directory)
        self._segments = sorted(found, key=lambda s: s.number)
        head = self._segments[0] if self._segments else None
        self._pos = cursor.offset if head is not None and head.number == cursor.segment else 0
        last = self._segments[-1].number + 1 if self._segments else 0
        self._next_number = max(last, cursor.segment, self._own_from_arg or 0)
        self.own_from = self._own_from_arg if self._own_from_arg is not None else last
        self._next_number = max(self._next_number, self.own_from)
        for i, seg in enumerate(self._segments):
            self._count(seg, self._pos if i == 0 else 0)

    def _count(self, seg: _Segment, pos: int) -> None:
        self._bytes += max(0, seg.size - pos)
        fd = os.open(self.directory / seg.name, os.O_RDONLY)
        try:
            while (item := read_at(fd, pos, seg.size)) is not None:
                if isinstance(item, Record):
                    self._batches += 1
                    self._readings += payload_readings(item.payload)
                pos = item.end
        finally:
            os.close(fd)

    def close(self) -> None:
        """Seal the segment being written and release files. Pending batches stay on disk."""
        if self._write_fd is not None:
            self._seal(self._segments[-1])
        self._close_reader()
        self._cursor.close()
        self._head = None

    # -- writing -----------------------------------------------------------------------------

    def append(self, batch: Batch) -> None:
        """Durably append `batch` (encode + `append_payload`)."""
        self.append_payload(encode_batch(batch))

    def append_payload(self, payload: bytes) -> None:
        """Durably append an `encode_batch` payload: written and fsynced before returning."""
        if self._write_fd is None:
            self._start_segment()
        assert self._write_fd is not None
        seg = self._segments[-1]
        record = frame(payload) + payload
        try:
            written = 0
            while written < len(record):
                written += os.write(self._write_fd, record[written:])
            os.fsync(self._write_fd)
        except OSError:
            os.ftruncate(self._write_fd, seg.size)  # no half record left behind to trip over
            raise
        seg.size += len(record)
        self._batches += 1
        self._readings += payload_readings(payload)
        self._bytes += len(record)
        if seg.size >= self.segment_bytes:
            self._seal(seg)

    def _start_segment(self) -> None:
        seg = _Segment(self._next_number, sealed=False, size=0)
        self._next_number += 1
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND
        self._write_fd = os.open(self.directory / seg.name, flags, 0o644)
        fsync_dir(self.directory)
        self._segments.append(seg)

    def _seal(self, seg: _Segment) -> None:
        assert self._write_fd is not None
        os.close(self._write_fd)
        self._write_fd = None
        old = self.directory / seg.name
        seg.sealed = True
        old.rename(self.directory / seg.name)
        fsync_dir(self.directory)

    # -- reading -----------------------------------------------------------------------------

    def peek(self) -> SpooledBatch | None:
        """The oldest unacknowledged batch (the same one until it is acknowledged), or None.
        Garbage on the way is quarantined, counted, logged and skipped."""
        while self._head is None and self._segments:
            seg = self._segments[0]
            item = read_at(self._reader(seg), self._pos, seg.size)
            if item is None:
                self._advance(seg.size)
            elif isinstance(item, Corrupt):
                self._skip(seg, item.start, item.end, item.reason)
            else:
                try:
                    batch = decode_batch(item.payload)
                except PayloadError as exc:
                    self._batches -= 1
                    self._readings -= payload_readings(item.payload)
                    self._skip(seg, item.start, item.end, f"undecodable: {exc}")
                    continue
                inherited = seg.number < self.own_from
                batch.replayed = inherited
                self._head = SpooledBatch(
                    batch, inherited, len(batch), seg.number, item.start, item.end
                )
        return self._head

    def ack(self, item: SpooledBatch) -> None:
        """`item` (the current `peek()`) was delivered: persist the position past it."""
        if item is not self._head:
            raise ValueError("ack() takes the batch peek() returned, once")
        self._head = None
        self._batches -= 1
        self._readings -= item.readings
        self._bytes -= item.end - item.start
        self._advance(item.end)

    def _advance(self, pos: int) -> None:
        """Move the read position to `pos` of the head segment and persist it; at the end of the
        segment, persist the start of the next one, then delete the finished segment."""
        seg = self._segments[0]
        if pos < seg.size:
            self._pos = pos
            self._cursor.store(Position(seg.number, pos))
            return
        self._close_reader()
        if self._write_fd is not None and len(self._segments) == 1:
            os.close(self._write_fd)  # the reader caught up with the writer
            self._write_fd = None
        self._segments.pop(0)
        self._pos = 0
        nxt = self._segments[0].number if self._segments else self._next_number
        self._cursor.store(Position(nxt, 0))
        (self.directory / seg.name).unlink(missing_ok=True)

    def _skip(self, seg: _Segment, start: int, end: int, reason: str) -> None:
        quarantine = self.directory / "quarantine"
        quarantine.mkdir(exist_ok=True)
        target = quarantine / f"{seg.number:010d}-{start:012d}.bin"
        target.write_bytes(os.pread(self._reader(seg), end - start, start))
        self._counters.spool_corrupt += 1
        self._bytes -= end - start
        self._log.warning(
            events.SPOOL_RECORD_CORRUPT,
            sink=self.label,
            segment=seg.name,
            offset=start,
            bytes=end - start,
            reason=reason,
            quarantined=str(target),
        )
        self._advance(end)

    def _reader(self, seg: _Segment) -> int:
        if self._read_fd is None or self._read_fd[0] != seg.number:
            self._close_reader()
            self._read_fd = (seg.number, os.open(self.directory / seg.name, os.O_RDONLY))
        return self._read_fd[1]

    def _close_reader(self) -> None:
        if self._read_fd is not None:
            os.close(self._read_fd[1])
            self._read_fd = None
