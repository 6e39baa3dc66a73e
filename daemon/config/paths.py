"""Directories the daemon will create and write (a spool, the state): checked at load, so that
`validate` refuses what `run` could never use, rather than `run` exiting 1 at start-up.

Only what cannot work is refused: a path that is a file, one under a virtual file system
(/proc, /sys, /dev: mkdir there fails or means something else), one whose nearest existing
ancestor is not a directory or sits on a read-only file system. A directory that does not exist
yet is fine: it is created.
"""

from __future__ import annotations

import os
from pathlib import Path

_VIRTUAL = (Path("/proc"), Path("/sys"), Path("/dev"))


def unusable_dir(path: str) -> str | None:
    """Why `path` cannot be a directory the daemon writes in, or None."""
    p = Path(path).absolute()
    if any(p == v or v in p.parents for v in _VIRTUAL):
        return f"is on a virtual file system: {path}"
    existing = p
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "is" if existing == p else f"is under {existing}, which is"
        return f"{what} not a directory: {path}"
    try:
        if os.statvfs(existing).f_flag & os.ST_RDONLY:
            return f"is on a read-only file system: {path}"
    except OSError as exc:
        return f"cannot be checked: {exc.strerror or exc}"
    return None
