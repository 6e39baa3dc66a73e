"""Process memory tuning for a long-running pipeline: two choices a library cannot make.

1. Keep freed memory mapped: per-batch temporaries must not cost a page fault per page.

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

2. Keep long-lived objects out of the garbage collector's full passes. Once a source runs, the
process holds everything it will hold for the pipeline's life: modules, components and, for
10,000 simulated sensors, 10,000 tasks with their coroutines. Every full collection walked all
of them: with 10,000 sensors ticking at 10 Hz the event loop stalled for ~100 ms at a time
(loop lag p99 106 ms; 9.7 ms with the collector off). `gc.freeze()` moves what exists now into
the permanent generation, in O(1); short-lived garbage is still collected as before. A rebuilt
pipeline unfreezes first, so the old pipeline's objects can be collected.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
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


def freeze_long_lived() -> None:
    """Exempt every object alive now from future collections (call once the sources run)."""
    gc.freeze()


def thaw_long_lived() -> None:
    """Let the next full collection see them again (call when the pipeline is torn down)."""
    gc.unfreeze()
