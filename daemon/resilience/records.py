"""Framing of spool records in a segment file: header (magic, u32 length, u32 crc32) + payload.

Why a magic and a CRC per record: a crash can leave half a record at the end of a segment, and a
disk can flip bits. Reading must tell a good record from garbage without trusting any length it
reads, and must find its feet again after garbage: it scans forward for the next magic and
re-checks everything there. A false magic inside a payload is harmless — its CRC will not match.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass

MAGIC = b"\xc7\x1dSP"
HEADER = struct.Struct("<4sII")
_SCAN_CHUNK = 1 << 20


def frame(payload: bytes) -> bytes:
    """The header for `payload` (write the two back to back)."""
    return HEADER.pack(MAGIC, len(payload), zlib.crc32(payload))


@dataclass(frozen=True, slots=True)
class Record:
    """A valid record occupying bytes [start, end) of its segment."""

    start: int
    end: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Corrupt:
    """Bytes [start, end) of a segment are not a valid record; the next read starts at `end`."""

    start: int
    end: int
    reason: str


def read_at(fd: int, pos: int, size: int) -> Record | Corrupt | None:
    """The record at `pos` of a segment file of `size` bytes, the garbage there, or None at the
    end. Consecutive garbage (a false magic in a corrupt payload) comes back as one region."""
    first = _read_one(fd, pos, size)
    if not isinstance(first, Corrupt):
        return first
    region = first
    while region.end < size:
        more = _read_one(fd, region.end, size)
        if not isinstance(more, Corrupt):
            break
        region = Corrupt(region.start, more.end, region.reason)
    return region


def _read_one(fd: int, pos: int, size: int) -> Record | Corrupt | None:
    if pos >= size:
        return None
    head = os.pread(fd, HEADER.size, pos)
    if len(head) < HEADER.size:
        reason = "truncated header"
    else:
        magic, length, crc = HEADER.unpack(head)
        body = pos + HEADER.size
        if magic != MAGIC:
            reason = "bad magic"
        elif body + length > size:
            reason = "truncated payload"
        else:
            payload = os.pread(fd, length, body)
            if len(payload) != length:
                reason = "truncated payload"
            elif zlib.crc32(payload) != crc:
                reason = "bad crc"
            else:
                return Record(pos, body + length, payload)
    return Corrupt(pos, _next_magic(fd, pos + 1, size), reason)


def _next_magic(fd: int, pos: int, size: int) -> int:
    """Offset of the first MAGIC at or after `pos`, or `size` if there is none."""
    while pos < size:
        want = min(_SCAN_CHUNK + len(MAGIC) - 1, size - pos)
        chunk = os.pread(fd, want, pos)
        i = chunk.find(MAGIC)
        if i >= 0:
            return pos + i
        if len(chunk) < want or pos + len(chunk) >= size:
            break
        pos += _SCAN_CHUNK
    return size
