"""Where a file replay is: what is saved once a batch is durably taken, and how a restart
tells that the file it resumes in is still the file it was reading."""

from __future__ import annotations

import dataclasses
import os
import zlib
from dataclasses import dataclass


@dataclass
class ReplayPosition:
    """How far the replay of one file got, so that a pipeline rebuilt on reload, and a restart,
    resume after the last batch durably taken (`ctx.persist` saves it once it is;
    `ctx.restored` reads it back) rather than replaying (and re-rejecting) the file from the
    start. Where to read from is a chunk's start (`chunk_offset`, the byte offset
    of line `chunk_line`; 0: the start of the file); which lines of it were yielded already is
    a line number, since chunk boundaries may fall elsewhere on the next read. The inode, the
    device, the size and a CRC of the bytes already read tell a file replaced (a new file may
    well get the old one's inode), rewritten or truncated since: then it is read from its start."""

    next_line: int = 1  # the first line whose reading has not been yielded
    rejected_through: int = 0  # the rejects of lines up to here are recorded
    chunk_offset: int = 0
    chunk_line: int = 1
    inode: int = 0
    device: int = 0
    head_crc: int = 0  # CRC-32 of the bytes before `chunk_offset` (already read, never rewritten)

    def saved(self, path: str) -> dict[str, int | str]:
        return {"path": path, **dataclasses.asdict(self)}

    @classmethod
    def from_saved(cls, saved: object) -> ReplayPosition | None:
        if not isinstance(saved, dict):
            return None
        try:
            values = {f.name: int(saved[f.name]) for f in dataclasses.fields(cls)}
        except (KeyError, TypeError, ValueError):
            return None
        return cls(**values) if min(values.values()) >= 0 else None


class RunningCrc:
    """CRC-32 of the file's bytes from 0 to a chunk start, extended as the replay moves on (a
    pread of the span since the last one, from the page cache: the reader has just read it)."""

    def __init__(self, fd: int, offset: int = 0, crc: int = 0) -> None:
        self._fd, self._offset, self._crc = fd, offset, crc

    def up_to(self, offset: int) -> int:
        while self._offset < offset:
            data = os.pread(self._fd, min(offset - self._offset, 1 << 20), self._offset)
            if not data:
                break
            self._crc = zlib.crc32(data, self._crc)
            self._offset += len(data)
        return self._crc
