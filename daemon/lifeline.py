"""Child processes that end when the daemon ends, however it ends; and ignore Ctrl-C.

Why: after a SIGKILL of the daemon, its forkserver, the pool workers forked from it and the
resource tracker lived on (~135 MB), each waiting on a pipe a sibling still held open: every
worker holds the forkserver's "alive" pipe, and the forkserver and the workers the tracker's.
And Ctrl-C (SIGINT to the whole process group) printed a `KeyboardInterrupt` traceback from
every pool worker, while the daemon was stopping them cleanly anyway.

Two mechanisms, since neither covers every case:
- `PR_SET_PDEATHSIG` (Linux): the kernel sends SIGKILL when the parent *thread* that forked the
  child exits: immediate, even for a child busy in numpy. The daemon starts its children from
  the event loop's thread, the main thread, which lives as long as the process.
- A look at the parent: once at start (it may have died before prctl ran, and then nobody
  signals us) and, for pool workers, every `WATCH_S` on a thread (other kernels; and a worker's
  parent is the forkserver, so it also watches the daemon itself).

The chain after a SIGKILL: the forkserver gets its signal (it imported this module as a
preload, see `preload`), its workers theirs, the encoder child its own; the resource tracker
then reads EOF on its pipe, whose last holders are gone, and exits by itself.

Only the standard library is imported here: the forkserver and every worker import it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Final

PR_SET_PDEATHSIG: Final = 1
WATCH_S: Final = 1.0  # how often a pool worker looks at its parent and the daemon


def die_with_parent(expected_parent: int | None = None) -> int:
    """Ask for SIGKILL when the parent dies; exit now if it already has. `expected_parent`:
    the parent's pid as the parent knew it (default: the current parent). Returns the parent."""
    parent = os.getppid() if expected_parent is None else expected_parent
    _set_pdeathsig(signal.SIGKILL)
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)
    return parent


def pool_worker_init(daemon_pid: int) -> None:
    """A feature-pool worker's initializer: ignore SIGINT (the daemon stops its workers on
    Ctrl-C; a traceback from each helps nobody), die with the forkserver that forked it (set
    at the fork already, see `preload`; again here for other start methods), and watch the
    daemon too, in case the forkserver lingers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = die_with_parent()
    if not _alive(daemon_pid):
        os._exit(1)
    threading.Thread(
        target=_watch, args=(parent, daemon_pid), name="ingestd-lifeline", daemon=True
    ).start()


def preload() -> None:
    """Run in the forkserver when it imports this module (it is in the preload list): the
    forkserver dies with the daemon that started it (if the daemon died before this ran, the
    forkserver's own "alive" pipe is at EOF already and it exits by itself). And it ignores
    SIGINT before `forkserver.main` notes the handlers its children get back: a worker ignores
    Ctrl-C from its fork on, not only once its initializer runs, after it has imported the
    daemon's main module (half a second in which a Ctrl-C printed a traceback)."""
    if _importing_from_forkserver():
        _set_pdeathsig(signal.SIGKILL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        forkserver = os.getpid()

        def in_each_worker() -> None:  # right after the fork, before it imports anything
            die_with_parent(forkserver)

        os.register_at_fork(after_in_child=in_each_worker)


def _watch(parent: int, daemon_pid: int) -> None:
    while True:
        time.sleep(WATCH_S)
        if os.getppid() != parent or not _alive(daemon_pid):
            os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else: not ours to judge
        return True
    return True


def _set_pdeathsig(sig: int) -> None:
    """prctl(PR_SET_PDEATHSIG, sig) where the kernel has it; a refusal is not an error (the
    checks above still apply)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)


def _importing_from_forkserver() -> bool:
    """Whether this import comes from `multiprocessing.forkserver.main` (its preloads), not
    from the daemon, a worker or a test: only the forkserver may ask to die with its parent."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__")
        if frame.f_code.co_name == "main" and module == "multiprocessing.forkserver":
            return True
        frame = frame.f_back
    return False


preload()
