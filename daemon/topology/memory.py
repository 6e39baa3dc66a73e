"""Keep freed memory mapped: per-batch temporaries must not cost a page fault per page.

Why: every stage and the wire encoder allocate arrays of a few hundred KB per batch and free
them at once. glibc serves blocks above its mmap threshold (128 KiB at first, adjusted upwards
as it sees them freed) with fresh mappings, and gives the top of the heap back to the OS
whenever more than its trim threshold is free — so the next batch touches brand-new pages, one
fault each. On the VMs this runs on a fault costs microseconds: encoding a batch took 1.9x as
long (measured: 1,050 vs 590 ns a reading, see benchmarks/OPTIMISATIONS.md). Fixed thresholds
make freed blocks stay in the heap for the next batch; the heap then stays at the pipeline's
working set (a few tens of MB, bounded by batch size and queue depth), not at the stream's
length.

Only glibc has `mallopt`; elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # blocks below this come from the heap (glibc's maximum)
TRIM_THRESHOLD = 128 * 1024 * 1024  # free heap kept before any is returned to the OS


@functools.cache
def keep_freed_memory() -> bool:
    """Set glibc's thresholds once per process; True if they were set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
