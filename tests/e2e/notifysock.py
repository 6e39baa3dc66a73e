"""A datagram socket the test binds itself as $NOTIFY_SOCKET, collecting sd_notify messages."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._recv, daemon=True)
        self._thread.start()

    def _recv(self) -> None:
        while not self._closed:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._cond:
                self.messages.append((time.monotonic(), data.decode()))
                self._cond.notify_all()

    def wait_for(self, needle: str, after: int = 0, timeout: float = 20.0) -> int:
        """Index of the first message at or after `after` containing `needle`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(after, len(self.messages)):
                    if needle in self.messages[i][1]:
                        return i
                left = deadline - time.monotonic()
                if left <= 0:
                    got = [m for _, m in self.messages[after:]][-10:]
                    raise AssertionError(f"no {needle!r} within {timeout}s; got {got}")
                self._cond.wait(left)

    def close(self) -> None:
        self._closed = True
        self._thread.join()
        self.sock.close()
