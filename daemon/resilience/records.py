"""Framing of spool records in a segment file: header (magic, u32 length, u32 crc32) + payload.

Why a magic and a CRC per record: a crash can leave half a record at the end of a segment, and a
disk can flip bits. Reading must tell a good record from garbage without trusting any length it
reads, and must find its feet again after garbage: it scans forward for the next magic and
re-checks everything there. A false magic inside a payload is harmless — its CRC will not match.

Why reading is bounded: whatever a segment holds (a GiB of zeros, random bytes whose false magic
claims a huge length), memory stays at about one chunk. Garbage is scanned `_SCAN_CHUNK` at a
time, a claimed length over `MAX_PAYLOAD` is garbage, and a long payload's CRC is computed chunk
by chunk before the payload is read whole (only a real record is ever held in memory).
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass

MAGIC = b"\xc7\x1dSP"
HEADER = struct.Struct("<4sII")
MAX_PAYLOAD = 256 << 20  # far above any batch (~47 bytes a reading); longer is garbage
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
        elif length > MAX_PAYLOAD:
            reason = "implausible length"
        elif body + length > size:
            reason = "truncated payload"
        elif length > _SCAN_CHUNK and _chunked_crc(fd, body, length) != crc:
            reason = "bad crc"
        else:
            payload = os.pread(fd, length, body)
            if len(payload) != length:
                reason = "truncated payload"
            elif zlib.crc32(payload) != crc:
                reason = "bad crc"
            else:
                return Record(pos, body + length, payload)
    return Corrupt(pos, next_magic(fd, pos + 1, size), reason)


def _chunked_crc(fd: int, pos: int, length: int) -> int | None:
    """The CRC of `length` bytes at `pos`, read a chunk at a time; None if the file is shorter."""
    crc = 0
    end = pos + length
    while pos < end:
        chunk = os.pread(fd, min(_SCAN_CHUNK, end - pos), pos)
        if not chunk:
            return None
        crc = zlib.crc32(chunk, crc)
        pos += len(chunk)
    return crc


def peek_header(fd: int, pos: int, size: int) -> tuple[int, int] | None:
    """(end, readings) of a plausible record at `pos` by its header alone (no CRC check), or
    None: a cheap walk for counting what a spool holds, one small read per record."""
    head = os.pread(fd, HEADER.size + 4, pos)
    if len(head) < HEADER.size:
        return None
    magic, length, _ = HEADER.unpack_from(head)
    end = pos + HEADER.size + length
    if magic != MAGIC or length > MAX_PAYLOAD or end > size:
        return None
    rows = int.from_bytes(head[HEADER.size : HEADER.size + 4], "little") if length >= 4 else 0
    return end, rows


def next_magic(fd: int, pos: int, size: int) -> int:
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
