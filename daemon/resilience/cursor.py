"""The spool's acknowledged position, durable across restarts at one fsync per acknowledgement.

Why two slots and not write-temp-then-rename: the cursor moves once per replayed batch, and a
rename costs a file fsync plus a directory fsync. Instead the file holds two fixed 32-byte slots,
each (magic, generation, segment, offset, crc32); a move overwrites the older slot and fsyncs. A
torn write can only damage the slot being written, whose CRC then fails, and the reader falls back
to the other one — the previous position, which at worst redelivers the record in progress
(at-least-once, never zero times).
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from daemon.durable import fsync_dir

_SLOT = struct.Struct("<4sQQQ")
_CRC = struct.Struct("<I")
_SLOT_SIZE = _SLOT.size + _CRC.size
_MAGIC = b"CUR1"


@dataclass(frozen=True, slots=True)
class Position:
    """The next unacknowledged record: byte `offset` of segment number `segment`."""

    segment: int
    offset: int


class CursorFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._generation = 0

    def load(self) -> Position:
        """The newest intact position on disk, or (0, 0) when there is none."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return Position(0, 0)
        best: tuple[int, Position] | None = None
        for i in range(2):
            slot = data[i * _SLOT_SIZE : (i + 1) * _SLOT_SIZE]
            if len(slot) < _SLOT_SIZE:
                continue
            (crc,) = _CRC.unpack_from(slot, _SLOT.size)
            if zlib.crc32(slot[: _SLOT.size]) != crc:
                continue
            magic, generation, segment, offset = _SLOT.unpack_from(slot)
            if magic == _MAGIC and (best is None or generation > best[0]):
                best = (generation, Position(segment, offset))
        if best is None:
            return Position(0, 0)
        self._generation = best[0]
        return best[1]

    def store(self, position: Position) -> None:
        """Durably record `position` (one pwrite + fsync)."""
        if self._fd is None:
            created = not self.path.exists()
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if created:
                fsync_dir(self.path.parent)
        self._generation += 1
        body = _SLOT.pack(_MAGIC, self._generation, position.segment, position.offset)
        slot = self._generation % 2
        os.pwrite(self._fd, body + _CRC.pack(zlib.crc32(body)), slot * _SLOT_SIZE)
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
