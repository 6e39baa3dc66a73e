"""The read side of a spool: the head record, skipping garbage, noticing vanished segments.

Why a segment is re-checked when the reader reaches it: `open()` saw the spool as it was, and an
outage can last hours. By the time replay gets to a segment it may have been deleted, truncated
or replaced by a directory or FIFO. Each is a `spool_lost` line with what the spool knew it held
(its readings, by their headers), and the reader moves on to the next segment: never a raise,
never a blocking open, never the whole segment in memory (`records.py` reads a chunk at a time).

The position is persisted on every acknowledgement. A cursor that cannot be written (a full
disk) is logged once (`spool_cursor_write_failed`) and written again at the next one: the
batch was delivered, and a restart before then redelivers it (at-least-once). A finished segment
is deleted even then: on a full disk that deletion is what gives the space back.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from daemon.durable import fsync_dir
from daemon.observability import events
from daemon.resilience.codec import payload_problem, payload_readings
from daemon.resilience.cursor import CursorFile, Position
from daemon.resilience.quarantine import Quarantine
from daemon.resilience.records import Corrupt, read_at
from daemon.resilience.segments import NotASegment, Segment, count_records, open_segment


@dataclass(frozen=True, slots=True)
class RawHead:
    """A valid record, not yet decoded: bytes [start, end) of segment number `segment`."""

    segment: int
    start: int
    end: int
    payload: bytes


class HeadReader:
    def __init__(
        self,
        directory: Path,
        segments: list[Segment],
        cursor: CursorFile,
        quarantine: Quarantine,
        *,
        next_number: Callable[[], int],
        finished: Callable[[Segment], None],
    ) -> None:
        self.directory = directory
        self.quarantine = quarantine
        self._reports = quarantine.reports
        self._next_number = next_number  # the spool's: where an empty spool's cursor points
        self._finished = finished  # the spool's: stop writing a segment the reader is done with
        self._label = quarantine.label
        self._segments = segments  # shared with the spool: oldest first
        self._cursor = cursor
        self.pos = 0  # read offset in segments[0]
        self._fd: tuple[int, int] | None = None  # (segment number, fd)
        self._head: RawHead | None = None
        self._cursor_failed = False

    def load(self) -> RawHead | None:
        """The oldest valid record, or None when the spool is empty."""
        while self._head is None and self._segments:
            seg = self._segments[0]
            fd = self._open(seg)
            if fd is None:
                continue
            try:
                item = read_at(fd, self.pos, seg.size)
            except OSError as exc:  # EIO: the disk lost it
                self.lost(seg, f"unreadable: {exc}")
                continue
            if item is None:
                self._advance(seg.size)
            elif isinstance(item, Corrupt):
                self._skip(seg, fd, item.start, item.end, item.reason)
            elif (problem := payload_problem(item.payload)) is not None:
                seg.batches = max(0, seg.batches - 1)
                seg.readings = max(0, seg.readings - payload_readings(item.payload))
                self._skip(seg, fd, item.start, item.end, f"undecodable: {problem}")
            else:
                self._head = RawHead(seg.number, item.start, item.end, item.payload)
        return self._head

    def ack(self, segment: int, readings: int, end: int) -> None:
        self._head = None
        if not self._segments or self._segments[0].number != segment:
            return  # its segment was reported lost meanwhile: nothing left to move past
        seg = self._segments[0]
        seg.batches = max(0, seg.batches - 1)
        seg.readings = max(0, seg.readings - readings)
        self._advance(end)

    def lost(self, seg: Segment, reason: str, **more: object) -> None:
        """`seg` is gone (or unusable): report what it held and drop it."""
        self._reports.warning(
            events.SPOOL_LOST,
            sink=self._label,
            segment=seg.name,
            reason=reason,
            batches=seg.batches,
            readings=seg.readings,
            **more,
        )
        self._reports.count("spool_lost")
        self._drop(seg)

    def forget(self, seg: Segment) -> None:
        """Drop an empty segment (an append into it failed): nothing to report."""
        with contextlib.suppress(OSError):
            (self.directory / seg.name).unlink(missing_ok=True)
        self._drop(seg)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd[1])
            self._fd = None
        self._head = None

    # -- internals ---------------------------------------------------------------------------

    def _open(self, seg: Segment) -> int | None:
        """The head segment's descriptor, checked; None when it turned out lost (dropped)."""
        if self._fd is not None and self._fd[0] == seg.number:
            return self._fd[1]
        self.close()
        path = self.directory / seg.name
        try:
            fd, size = open_segment(path)
        except FileNotFoundError:
            self.lost(seg, "segment deleted")
            return None
        except NotASegment as exc:
            self.quarantine.move_aside(path, f"{exc.strerror} named like a segment")
            self.lost(seg, f"replaced by {exc.strerror}")
            return None
        except OSError as exc:
            self.lost(seg, f"unreadable: {exc}")
            return None
        self._fd = (seg.number, fd)
        if size < seg.size:
            before = (seg.batches, seg.readings)
            seg.batches, seg.readings = count_records(fd, min(self.pos, size), size)
            self._reports.warning(
                events.SPOOL_LOST,
                sink=self._label,
                segment=seg.name,
                reason="segment truncated",
                bytes=seg.size - size,
                batches=before[0] - seg.batches,
                readings=before[1] - seg.readings,
            )
            self._reports.count("spool_lost")
            seg.size = size
            self.pos = min(self.pos, size)
        return fd

    def _skip(self, seg: Segment, fd: int, start: int, end: int, reason: str) -> None:
        name = f"{seg.number:010d}-{start:012d}.bin"
        copied = self.quarantine.copy(fd, start, end, name)
        self._reports.count("spool_corrupt")
        self._reports.warning(
            events.SPOOL_RECORD_CORRUPT,
            sink=self._label,
            segment=seg.name,
            offset=start,
            bytes=end - start,
            reason=reason,
            quarantined=copied,
        )
        self._advance(end)

    def _advance(self, pos: int) -> None:
        """Move the read position to `pos` of the head segment and persist it; at the end of the
        segment, persist the start of the next one, then delete the finished segment."""
        seg = self._segments[0]
        if pos < seg.size:
            self.pos = pos
            self._store(Position(seg.number, pos))
            return
        self._drop(seg)
        path = self.directory / seg.name
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
            fsync_dir(self.directory)  # no finished segment resurfaces after a power cut

    def _drop(self, seg: Segment) -> None:
        """Take `seg` out of the queue; if it was the head, persist the next one's start."""
        if seg not in self._segments:
            return
        was_head = self._segments[0] is seg
        self._finished(seg)
        self._segments.remove(seg)
        if not was_head:
            return
        self.close()
        self.pos = 0
        nxt = self._segments[0].number if self._segments else self._next_number()
        self._store(Position(nxt, 0))

    def _store(self, position: Position) -> None:
        try:
            self._cursor.store(position)
        except OSError as exc:
            if not self._cursor_failed:
                self._reports.warning(
                    events.SPOOL_CURSOR_WRITE_FAILED, sink=self._label, error=str(exc)
                )
            self._cursor_failed = True
        else:
            self._cursor_failed = False
