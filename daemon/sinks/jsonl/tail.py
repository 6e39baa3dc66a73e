"""Repairing the torn last line that a killed daemon leaves in a sink's file, before appending.

Why at every open: a SIGKILL (or power cut) in the middle of a large write leaves the file ending
in part of a line, and the next run's first batch would follow it, leaving a corrupt line in the
middle of the file. Whatever a torn line held was never acknowledged (the write had not returned),
so its reading is still in flight upstream: redelivered after the restart, or spooled. Cutting
the fragment loses nothing counted; it is kept in the dead-letter file for the record, and not
counted as a reading (`ctx.quarantine`: it was never one the counters saw). Opening is rare
(start, rotation, a file that vanished), and the check reads backwards from the end at most
`durable.TAIL_WINDOW` bytes, one byte when the file ends whole.

Order: cut first, then quarantine what was cut. A cut that fails fails the open (a `SinkError`:
retry, breaker, spool) rather than append after a fragment; a dead-letter write that fails is
logged, since nothing counted depends on it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from daemon.components import SinkError
from daemon.durable import TAIL_WINDOW, find_torn_tail, repair_tail
from daemon.observability import events
from daemon.runtime import ComponentContext

_NOTE_BYTES = 4096  # of an overlong fragment left in place, the dead-letter entry shows this much


async def repair_torn_tail(path: Path, ctx: ComponentContext) -> None:
    """Make the regular file at `path` end in a complete line (none there, or not a regular
    file: nothing to do); the fragment goes to the dead-letter file, the repair to the log."""
    tail = await asyncio.to_thread(find_torn_tail, path)
    if tail is None:
        return
    try:
        repaired = await asyncio.to_thread(repair_tail, path, tail)
    except OSError as exc:
        raise SinkError(f"cannot repair the torn tail of {path}: {exc}") from exc
    if not repaired:  # the file changed between reading and cutting: someone else writes it
        return
    if tail.whole:
        reason = f"torn line at {path}:{tail.offset} after a crash"
        raw, action = tail.fragment, "cut"
    else:
        reason = f"unterminated line longer than {TAIL_WINDOW} bytes at {path}, ended in place"
        raw, action = tail.fragment[-_NOTE_BYTES:], "newline_appended"
    extra = {"path": str(path), "offset": tail.offset, "bytes": len(tail.fragment)}
    error = None
    try:
        ctx.quarantine(reason, raw.decode("utf-8", errors="replace"), extra)
    except OSError as exc:
        error = str(exc)
    ctx.log.warning(
        events.TORN_LINE_REPAIRED,
        sink=ctx.label,
        path=str(path),
        offset=tail.offset,
        bytes=len(tail.fragment),
        action=action,
        dead_lettered=error is None,
        **({"error": error} if error else {}),
    )
