"""paho-mqtt driven by the asyncio event loop: no network thread of its own.

Why not `loop_start()`: paho's thread would parse every packet in Python, and on two cores the
GIL makes it take turns with the pipeline instead of running beside it; the reads are cheap to
do here, between the pipeline's own steps. paho supports this directly: its socket callbacks say
when a socket opens, closes, or has something to write, and `loop_read` / `loop_write` /
`loop_misc` do the work. The bridge maps them onto `loop.add_reader` / `add_writer` and a timer.

Why `BufferedClient`: paho reads the fixed header of each packet one `recv(1)` at a time (the
command byte, then each byte of the remaining length), then the rest, and `loop_read` handles
one packet per call. That is three or four system calls per small message, and one event-loop
wake-up each. The subclass reads 64 KiB at a time and serves paho's small reads from that, and
`Bridge._readable` handles every packet already buffered before it returns (one real read per
wake-up, so a flood cannot starve the rest of the loop).

uvloop (the daemon's loop) has one trap: on a socket error (the broker resets the connection)
it runs the callbacks once and closes the fd's poll, leaving it in its table, closed. So
`_readable` always makes its one real read, which meets the error and lets paho close the
connection, and `_watch` clears such a dead poll if it meets one anyway.

Opening a connection (DNS, TCP, the TLS handshake) blocks, so `Bridge.connect` runs paho's
`reconnect()` in a worker thread while no socket is registered, then attaches the new socket
here; socket callbacks paho makes on that thread are ignored and caught up on attach.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import paho.mqtt.client as mqtt

_READ_BYTES = 64 * 1024
_MISC_INTERVAL_S = 1.0  # keepalive PINGs and their timeouts are checked this often
_EMPTY = b""


class BufferedClient(mqtt.Client):
    """A paho client whose socket reads come from a 64 KiB buffer (see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rbuf = _EMPTY
        self._rpos = 0
        self._rsock: object = None  # the socket the buffered bytes came from
        self.recv_allowed = True  # one real recv per readable event (set by the bridge)

    def buffered(self) -> bool:
        """Bytes of the current socket are waiting to be parsed."""
        return self._rpos < len(self._rbuf) and self._rsock is self._sock

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rsock is not self._sock:  # a new connection: what was buffered is void
            self._rbuf, self._rpos, self._rsock = _EMPTY, 0, self._sock
        if self._rpos >= len(self._rbuf):
            if not self.recv_allowed:
                raise BlockingIOError  # paho keeps the partial packet and waits
            self.recv_allowed = False
            data = super()._sock_recv(_READ_BYTES)
            if not data:
                return data  # the broker closed the connection
            self._rbuf, self._rpos = data, 0
        start = self._rpos
        self._rpos = end = min(len(self._rbuf), start + bufsize)
        return self._rbuf[start:end]


class Bridge:
    """Registers a `BufferedClient`'s socket with the running loop and drives it."""

    def __init__(self, client: BufferedClient, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop
        self._thread = threading.get_ident()
        self._fd = -1  # the registered socket's descriptor, -1: none
        self._writing = False
        self._misc: asyncio.TimerHandle | None = None
        self.paused = False  # reads held back by the consumer (`pause` / `resume`)
        client.on_socket_open = self._on_open
        client.on_socket_close = self._on_close
        client.on_socket_register_write = self._on_want_write
        client.on_socket_unregister_write = self._on_write_done

    # -- connecting (the blocking part in a thread) -------------------------------------------
    async def connect(self) -> None:
        """Open a new connection and send CONNECT; the CONNACK arrives through the loop.
        Raises what connecting raised (OSError, ssl.SSLError, TimeoutError)."""
        self.detach()  # the worker thread closes the old socket: it must not be polled then
        await asyncio.to_thread(self.client.reconnect)
        self.attach()

    def attach(self) -> None:
        sock = self.client.socket()
        if sock is None or self._fd >= 0:
            return
        self._fd = sock.fileno()
        if not self.paused:
            self._watch(self.loop.add_reader, self._readable)
        if self.client.want_write():
            self._start_writing()
        self._misc = self.loop.call_later(_MISC_INTERVAL_S, self._tick)

    def detach(self) -> None:
        """Stop polling the socket (paho still owns and closes it)."""
        if self._fd < 0:
            return
        self.loop.remove_reader(self._fd)
        if self._writing:
            self.loop.remove_writer(self._fd)
            self._writing = False
        if self._misc is not None:
            self._misc.cancel()
            self._misc = None
        self._fd = -1

    # -- flow control ---------------------------------------------------------------------------
    def pause(self) -> None:
        """Stop reading: the consumer holds enough. TCP pushes back on the broker."""
        if not self.paused:
            self.paused = True
            if self._fd >= 0:
                self.loop.remove_reader(self._fd)

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            if self._fd >= 0:
                self._watch(self.loop.add_reader, self._readable)
                self.loop.call_soon(self._readable)  # what was buffered before the pause

    # -- paho's socket callbacks ------------------------------------------------------------
    def _on_open(self, client: Any, userdata: Any, sock: Any) -> None:
        if threading.get_ident() == self._thread:
            self.attach()
        # from the connect thread: `connect` attaches once it returns

    def _on_close(self, client: Any, userdata: Any, sock: Any) -> None:
        if threading.get_ident() == self._thread:
            self.detach()  # paho closes the socket right after this returns

    def _on_want_write(self, client: Any, userdata: Any, sock: Any) -> None:
        if threading.get_ident() == self._thread and self._fd >= 0:
            self._start_writing()

    def _on_write_done(self, client: Any, userdata: Any, sock: Any) -> None:
        if threading.get_ident() == self._thread and self._writing and self._fd >= 0:
            self.loop.remove_writer(self._fd)
            self._writing = False

    def _start_writing(self) -> None:
        if not self._writing:
            self._writing = True
            self._watch(self.loop.add_writer, self._writable)

    def _watch(self, add: Any, callback: Any) -> None:
        """`add(fd, callback)`, past a poll uvloop closed after a socket error: it stays in
        the loop's table, closed, and every later add for the fd fails. Removing both
        directions drops it; a fresh poll then reports the error to our callback."""
        try:
            add(self._fd, callback)
        except RuntimeError:  # "unable to perform operation on <UVPoll closed=True>"
            self.loop.remove_reader(self._fd)
            self.loop.remove_writer(self._fd)
            if not self.paused:
                self.loop.add_reader(self._fd, self._readable)
            if self._writing:
                self.loop.add_writer(self._fd, self._writable)

    # -- the work ------------------------------------------------------------------------------
    def _readable(self) -> None:
        """Every packet of one read: the first `loop_read` reads, the rest parse the buffer."""
        client = self.client
        if not self._reading():
            return
        client.recv_allowed = True
        more = True
        while more:  # a callback may pause us, or a lost connection detach us, midway
            more = client.loop_read() == mqtt.MQTT_ERR_SUCCESS and self._reading()
            # on, while bytes are buffered, and until the one real read was tried: uvloop runs
            # this callback once for a socket error (a reset) and then closes its poll, so the
            # read that meets the error must happen now, or the loss goes unnoticed
            more = more and (client.buffered() or client.recv_allowed)
        pending = getattr(client.socket(), "pending", None)  # TLS: decrypted, not on the fd
        if pending is not None and pending() > 0 and self._reading():
            self.loop.call_soon(self._readable)

    def _reading(self) -> bool:
        return self._fd >= 0 and not self.paused

    def _writable(self) -> None:
        self.client.loop_write()

    def _tick(self) -> None:
        self._misc = None
        if self._fd < 0:
            return
        self.client.loop_misc()
        if self._fd >= 0 and self._misc is None:
            self._misc = self.loop.call_later(_MISC_INTERVAL_S, self._tick)
