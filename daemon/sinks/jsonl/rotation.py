"""Size-based rotation of a sink's file: `<path>` becomes `<path>.<n>`, n = 1, 2, ...

Why this naming (and not logrotate's shifting `.1` → `.2`): a rotated file is never renamed
again, so a reader that has seen `<path>.7` can trust it stays `<path>.7`, and a restart simply
continues after the highest n on disk. These are plain blocking functions; the sink runs them in
a worker thread.
"""

from __future__ import annotations

import os
from pathlib import Path

from daemon.durable import fsync_dir


def rotated_path(path: Path, n: int) -> Path:
    """`<path>.<n>`, beside `path`."""
    return path.with_name(f"{path.name}.{n}")


def highest_rotation(path: Path) -> int:
    """The highest n of an existing `<path>.<n>` (0 when there is none or no directory)."""
    prefix = path.name + "."
    highest = 0
    try:
        with os.scandir(path.parent) as entries:
            for entry in entries:
                suffix = entry.name[len(prefix) :]
                if entry.name.startswith(prefix) and suffix.isascii() and suffix.isdigit():
                    highest = max(highest, int(suffix))
    except FileNotFoundError:
        return 0
    return highest


def rotate(path: Path, after: int) -> int:
    """Rename `path` to the first free `<path>.<n>` with n > `after`; return that n.

    Skipping taken names (rather than overwriting) keeps a file that appeared behind our back.
    """
    n = after + 1
    while rotated_path(path, n).exists():
        n += 1
    path.rename(rotated_path(path, n))
    return n


def seal(path: Path, after: int | None, *, sync_dir: bool) -> int:
    """`rotate` after `after` (None: after the highest on disk), the rename made durable when
    `sync_dir`; return the new n."""
    n = rotate(path, highest_rotation(path) if after is None else after)
    if sync_dir:
        fsync_dir(path.parent)
    return n
