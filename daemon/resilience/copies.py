"""One batch spooled by several sinks: which copy carries its count into the replay.

Why: the fan-out counts a reading once, `spooled`, however many sinks had to park it; each of
those sinks' spools then holds its own copy, and each replays it. If every replay counted
(`replayed` + `written` after a restart, `unspooled` within the run), two sinks would double
the counters — 135,952 for 67,976 readings after a forced shutdown. So the first sink whose
spool takes the batch claims it and writes the counted copy; the others write theirs marked
`copy` (`codec.py`), whose replay delivers to that sink but counts nothing. A sink whose spool
write fails lets go of its claim, so a copy that did reach a spool can carry the count.

What that cannot know: if the counted copy is later lost (a deleted segment, `spool_lost`), a
copy's replay still counts nothing, so its readings reach that sink uncounted — never twice.
"""

from __future__ import annotations


class SpoolCopies:
    """Made by the fan-out per batch and shared by its sinks' deliveries (one event loop)."""

    __slots__ = ("_holder",)

    def __init__(self) -> None:
        self._holder: object | None = None

    def claim(self, sink: object) -> bool:
        """True if `sink` holds (or now takes) the counted copy."""
        if self._holder is None:
            self._holder = sink
        return self._holder is sink

    def release(self, sink: object) -> None:
        """`sink`'s spool write failed: another sink's copy may carry the count."""
        if self._holder is sink:
            self._holder = None
