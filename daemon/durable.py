"""Filesystem durability helpers shared by the sinks, the dead-letter file and the spool.

Two faults an append-only writer must notice, because nothing else will tell it:

- **A torn tail.** A process killed in the middle of a large write leaves the file ending in
  part of a line; the next run's appends would follow it and put a corrupt line in the middle.
  `find_torn_tail` reads the end of the file backwards, at most `window` bytes (never the whole
  file, whatever its size), and `repair_tail` cuts the fragment off.
- **A deleted or replaced file.** After `rm -rf data/` a writer holding the old descriptor keeps
  writing into an inode no path names, and whatever it "wrote" is gone. `moved` compares what the
  path names now with the file the writer has open: one `stat`, cheap enough for every batch.

These are plain blocking calls on small amounts of data; async callers run the reads in a thread.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

FileId = tuple[int, int]  # (st_dev, st_ino): which file, whatever names it
Moved = Literal["deleted", "replaced"]

TAIL_WINDOW = 1 << 20
"""How far back a torn line is looked for: far longer than any line ingestd writes (a reading is
under 1 KB). A fragment longer than this is not a line this daemon tore, so it is left alone."""

_FIRST_READ = 4096


def fsync_dir(directory: Path) -> None:
    """Make creations, renames and deletions in `directory` durable: the directory entry is
    data too, and a rename that was never synced can vanish with a power cut."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_id(status: os.stat_result) -> FileId:
    return (status.st_dev, status.st_ino)


def moved(path: Path, expected: FileId) -> Moved | None:
    """None while `path` names the file `expected`; else whether it was deleted or replaced.
    A path that cannot be looked at for another reason (permissions) counts as unmoved: the
    writer cannot do better than keep its file, and its next open will report the error."""
    try:
        status = os.stat(path)  # noqa: PTH116 - one syscall, no Path object per batch
    except (FileNotFoundError, NotADirectoryError):
        return "deleted"
    except OSError:
        return None
    return None if file_id(status) == expected else "replaced"


@dataclass(frozen=True, slots=True)
class TornTail:
    """The end of a regular file that is not a complete (newline-terminated) line.

    `offset`: where the fragment starts, the end of the last complete line (0: none). With
    `whole` False no newline was found within the window: the fragment is longer than any line
    we write, `fragment` holds only its last `window` bytes and `offset` is where those start.
    `size` and `file` are the file as it was read, so a repair never cuts a file that changed.
    """

    offset: int
    fragment: bytes
    size: int
    file: FileId
    whole: bool = True


def find_torn_tail(path: Path, window: int = TAIL_WINDOW) -> TornTail | None:
    """The torn tail of the regular file at `path`, or None (no file, not a regular file, empty,
    or ending in a newline). Reads backwards from the end, at most `window` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # O_NONBLOCK: a FIFO must not block
    except OSError:  # none there, a directory, unreadable: nothing this can repair
        return None
    try:
        status = os.fstat(fd)
        size = status.st_size
        if not stat.S_ISREG(status.st_mode) or size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return None
        tail, chunk, newline = b"", _FIRST_READ, -1
        while newline < 0 and len(tail) < min(size, window):
            want = min(chunk, window - len(tail), size - len(tail))
            piece = os.pread(fd, want, size - len(tail) - want)
            if len(piece) != want:  # the file shrank while we read it: not ours to repair
                return None
            newline = piece.rfind(b"\n")
            tail = piece + tail
            chunk *= 2
        start = size - len(tail)
        if newline >= 0:
            return TornTail(start + newline + 1, tail[newline + 1 :], size, file_id(status))
        return TornTail(start, tail, size, file_id(status), whole=start == 0)
    finally:
        os.close(fd)


def repair_tail(path: Path, tail: TornTail) -> bool:
    """Make `path` end in a complete line: cut a whole fragment off (truncate to its offset), or
    end an overlong one with a newline (it cannot be a line we tore, and cutting it is not ours
    to decide). Synced before returning. False, touching nothing, if the file is no longer the
    one `find_torn_tail` read (another file, or a different size)."""
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    try:
        status = os.fstat(fd)
        if file_id(status) != tail.file or status.st_size != tail.size:
            return False
        if tail.whole:
            os.ftruncate(fd, tail.offset)
        else:
            os.pwrite(fd, b"\n", tail.size)
        os.fsync(fd)
        return True
    finally:
        os.close(fd)
