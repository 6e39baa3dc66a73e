"""What a spool finds at open: its segments checked against the cursor, nothing lost unsaid.

Why so suspicious: a spool is read after a crash, a power cut or an operator's `rm`, and the
one thing it must never do is lose readings quietly. The invariants that normal operation keeps,
and what breaking each one means:

- Segment numbers are consecutive from the cursor's segment to the last one (a new number is
  taken only once its file exists; a finished segment is deleted only after the cursor moved
  past it, and that deletion is made durable). A missing number is a deleted segment:
  `spool_lost`.
- A segment is never empty, except the newest `.open` one when a crash came between creating it
  and the first fsynced append (nothing acknowledged was in it: removed quietly). Any other
  empty segment was truncated: `spool_lost`.
- At most one segment lies below the cursor: the one just finished when a crash came before its
  deletion (the cursor then points at the start of the next). More, or a cursor mid-segment past
  a segment, means the cursor is wrong: `spool_cursor_invalid`, counted `spool_corrupt`, and
  every segment is replayed from its start (duplicates allowed, loss is not).
- The cursor's offset lies within its segment; past the end, the segment was cut below what was
  acknowledged: `spool_lost`.
- Only regular files carry segment names. A directory or FIFO there is moved into `quarantine/`
  (`spool_entry_moved`) and its number counted `spool_lost`; none is ever opened blocking.

Every finding is a log line with the segment and the reason. Nothing here raises for what it
finds on disk; the caller runs it in a thread.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from daemon.durable import fsync_dir
from daemon.observability import events
from daemon.resilience.cursor import CursorFile, Position
from daemon.resilience.quarantine import Quarantine
from daemon.resilience.report import Reports
from daemon.resilience.segments import SEGMENT_NAME, Segment, count_records, kind_of, open_segment


@dataclass(slots=True)
class Adopted:
    segments: list[Segment]  # oldest first
    pos: int  # read offset in segments[0]
    next_number: int  # the lowest number a new segment may take


def adopt(directory: Path, cursor: CursorFile, quarantine: Quarantine, reports: Reports) -> Adopted:
    label = quarantine.label
    position = _load_cursor(directory, cursor, quarantine, reports)
    segments, accounted = _scan(directory, quarantine, reports)
    highest = max((s.number for s in segments), default=-1)
    segments = _drop_empty(directory, segments, accounted, reports, label)
    if position is not None:
        position = _check_below(directory, segments, position, reports, label)
    start = position.segment if position is not None else None
    if segments:
        _report_gaps(segments, accounted, start, reports, label)
    pos = 0
    if position is not None and segments and segments[0].number == position.segment:
        head = segments[0]
        if position.offset <= head.size:
            pos = position.offset
        else:
            reports.warning(
                events.SPOOL_LOST,
                sink=label,
                segment=head.name,
                reason="segment shorter than the acknowledged position",
                size=head.size,
                cursor_offset=position.offset,
            )
            reports.count("spool_lost")
            _unlink(directory / head.name)
            segments.pop(0)
    _seal_adopted(directory, segments)
    for i, seg in enumerate(segments):
        try:
            fd, size = open_segment(directory / seg.name)
        except OSError:
            continue  # replay reports it, when it gets there
        try:
            seg.size = size
            seg.batches, seg.readings = count_records(fd, pos if i == 0 else 0, size)
        except OSError:
            pass  # a gauge only: replay reads it again and reports what it finds
        finally:
            os.close(fd)
    floor = max(highest + 1, position.segment if position is not None else 0)
    return Adopted(segments, pos, floor)


def _load_cursor(
    directory: Path, cursor: CursorFile, quarantine: Quarantine, reports: Reports
) -> Position | None:
    position = cursor.load()
    if cursor.status == "unreadable":
        reports.warning(
            events.SPOOL_CURSOR_INVALID,
            sink=quarantine.label,
            reason="cursor unreadable",
            action="every segment is replayed from its start",
        )
        reports.count("spool_corrupt")
        with contextlib.suppress(OSError):
            if not stat.S_ISREG(os.lstat(cursor.path).st_mode):
                quarantine.move_aside(cursor.path, "the cursor is not a regular file")
    return position


def _scan(
    directory: Path, quarantine: Quarantine, reports: Reports
) -> tuple[list[Segment], set[int]]:
    """Regular segment files, and the numbers already reported (moved aside)."""
    found: dict[int, Segment] = {}
    accounted: set[int] = set()
    try:
        entries = list(os.scandir(directory))
    except OSError as exc:
        reports.warning(events.SPOOL_WRITE_FAILED, sink=quarantine.label, error=str(exc))
        return [], accounted
    for entry in sorted(entries, key=lambda e: e.name):
        m = SEGMENT_NAME.match(entry.name)
        if m is None:
            continue
        number, sealed = int(m.group(1)), m.group(2) == "seg"
        try:
            status = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        path = Path(entry.path)
        if not stat.S_ISREG(status.st_mode):
            kind = kind_of(status.st_mode)
            quarantine.move_aside(path, f"a {kind} named like a segment")
            reports.warning(
                events.SPOOL_LOST, sink=quarantine.label, segment=entry.name, reason=f"a {kind}"
            )
            reports.count("spool_lost")
            accounted.add(number)
            continue
        if number in found:  # NNN.open and NNN.seg (a crash cannot do that): keep the sealed
            older = found[number]
            if not sealed:
                quarantine.move_aside(path, "a second file with this segment number")
                continue
            quarantine.move_aside(directory / older.name, "a second file with this number")
        found[number] = Segment(number, sealed, status.st_size)
    return sorted(found.values(), key=lambda s: s.number), accounted


def _drop_empty(
    directory: Path, segments: list[Segment], accounted: set[int], reports: Reports, label: str
) -> list[Segment]:
    kept = []
    for i, seg in enumerate(segments):
        if seg.size > 0:
            kept.append(seg)
            continue
        _unlink(directory / seg.name)
        accounted.add(seg.number)
        if i == len(segments) - 1 and not seg.sealed:
            continue  # created, then the crash: nothing acknowledged was in it
        reports.warning(events.SPOOL_LOST, sink=label, segment=seg.name, reason="empty segment")
        reports.count("spool_lost")
    return kept


def _check_below(
    directory: Path, segments: list[Segment], position: Position, reports: Reports, label: str
) -> Position | None:
    """Handle segments numbered below the cursor; None when the cursor cannot be trusted."""
    below = [s for s in segments if s.number < position.segment]
    if not below:
        return position
    if len(below) == 1 and below[0].number == position.segment - 1 and position.offset == 0:
        _unlink(directory / below[0].name)  # finished; its deletion did not survive a crash
        segments.remove(below[0])
        return position
    reports.warning(
        events.SPOOL_CURSOR_INVALID,
        sink=label,
        reason="cursor past existing segments",
        cursor=[position.segment, position.offset],
        segments=[s.name for s in below],
        action="every segment is replayed from its start",
    )
    reports.count("spool_corrupt")
    return None


def _report_gaps(
    segments: list[Segment], accounted: set[int], start: int | None, reports: Reports, label: str
) -> None:
    """Each run of missing numbers from the cursor's segment (or the first one) to the last."""
    present = {s.number for s in segments} | accounted
    expected = segments[0].number if start is None else min(start, segments[0].number)
    for n in sorted(x for x in present if expected <= x <= segments[-1].number):
        if n > expected:
            reports.warning(
                events.SPOOL_LOST,
                sink=label,
                segment=f"{expected:010d}",
                last_segment=f"{n - 1:010d}",
                reason="segment missing",
            )
            reports.count("spool_lost", n - expected)
        expected = n + 1


def _seal_adopted(directory: Path, segments: list[Segment]) -> None:
    renamed = False
    for seg in segments:
        if seg.sealed:
            continue
        old = directory / seg.name
        try:
            old.rename(directory / f"{seg.number:010d}.seg")
        except OSError:
            continue  # read under its .open name; the next open tries again
        seg.sealed = True
        renamed = True
    if renamed:
        with contextlib.suppress(OSError):
            fsync_dir(directory)


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
        fsync_dir(path.parent)
