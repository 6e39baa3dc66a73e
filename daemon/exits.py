"""Running the daemon's coroutine so that its exit always happens on time.

`asyncio.run` (and `uvloop.run`) end by joining the default executor's threads, and the
interpreter joins them again at exit. A thread blocked for good in a system call (a write to a
FIFO nobody reads: no timeout can cancel it) would hold the process forever after the daemon
had finished. So the loop here has its own default executor, which is let go without waiting,
threads get `THREAD_GRACE_S` to finish, and when one is still stuck the process leaves with
`os._exit` once the logs are flushed: everything the daemon owns was closed by then, and what the
stuck thread held was in flight (spooled, or redelivered after the restart).
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog
import uvloop

from daemon.observability import events

THREAD_GRACE_S = 1.0


def run_to_exit(main: Coroutine[Any, Any, int]) -> int:
    """Run `main` on a fresh uvloop; its exit code, after every thread ended or was left."""
    loop = uvloop.new_event_loop()
    executor = ThreadPoolExecutor(thread_name_prefix="ingestd-io")
    loop.set_default_executor(executor)
    asyncio.set_event_loop(loop)
    try:
        code = loop.run_until_complete(main)
        _cancel_leftovers(loop)
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
        asyncio.set_event_loop(None)
        loop.close()
    stuck = _join_threads(THREAD_GRACE_S)
    if stuck:
        structlog.get_logger("daemon").error(events.THREADS_ABANDONED, threads=stuck)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    leftovers = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in leftovers:
        task.cancel()
    if leftovers:
        loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))


def _join_threads(budget_s: float) -> list[str]:
    """Join every other non-daemon thread within `budget_s`; the names of those still alive."""
    deadline = time.monotonic() + budget_s
    me = threading.current_thread()
    for thread in threading.enumerate():
        if thread is me or thread.daemon:
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
    return [t.name for t in threading.enumerate() if t is not me and not t.daemon and t.is_alive()]
