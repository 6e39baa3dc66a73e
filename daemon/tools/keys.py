"""Single key presses from a terminal without blocking, for `ingestd top`'s `q`.

Why cbreak and not raw: in cbreak mode a key arrives at once, without Enter, while the terminal
still turns Ctrl-C into SIGINT (so it interrupts like everywhere else) and output keeps its
newline handling. The previous mode is restored on exit whatever happened, so a crash or a
Ctrl-C never leaves the operator's shell without echo. When stdin is not a terminal there are no
keys: `wait` only paces.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import time
import tty
from types import TracebackType
from typing import Any


class KeyReader:
    def __init__(self, stream: Any = None) -> None:
        self._stream = stream if stream is not None else sys.stdin
        self._fd: int | None = None
        self._saved: list[Any] | None = None

    def __enter__(self) -> KeyReader:
        try:
            fd = self._stream.fileno()
        except (AttributeError, OSError, ValueError):
            return self
        if os.isatty(fd):
            self._fd = fd
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None and self._saved is not None:
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)

    def wait(self, timeout_s: float) -> str | None:
        """The keys pressed within `timeout_s` (as soon as one is), or None when none was."""
        if self._fd is None:
            time.sleep(max(0.0, timeout_s))
            return None
        ready, _, _ = select.select([self._fd], [], [], max(0.0, timeout_s))
        if not ready:
            return None
        data = os.read(self._fd, 64)
        return data.decode(errors="replace") if data else None
