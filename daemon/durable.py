"""Filesystem durability helpers shared by the sinks and the spool."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Make creations, renames and deletions in `directory` durable: the directory entry is
    data too, and a rename that was never synced can vanish with a power cut."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
