"""A private Mosquitto broker: its own config, port, persistence and log in a directory of ours.

Why a private broker: tests that restart the broker, or that need settings the machine's broker
does not have, and benchmarks that must not share a broker with anything else, never touch the
service on 1883. This one listens on a free loopback port, keeps its persistence file in the
given directory, and is stopped by its owner. It lives here, not in tests/, because the
benchmarks use it too and the dependency runs tests -> benchmarks -> daemon;
`tests/brokers/mosquitto.py` is the tests' door to it (with fixtures).

`tuned=True` is what a consumer that withholds PUBACKs until its readings are durably taken
needs (measured with `benchmarks/mqtt_ingest.py`, 100,000 QoS 1 messages from two publishers):

- `max_queued_messages 0` (no count limit), bounded by bytes instead (`max_queued_bytes`): the
  default keeps at most 1000 QoS 1 messages per client beyond those in flight and *drops* the
  rest, silently, for a client that is slower than the publishers or offline with a persistent
  session. Stock, 54-57 % of the messages were lost to every consumer, the bare paho
  subscriber (acks at once) included; with this one setting, none.
- `max_inflight_messages 0`: lifts the default of 20 unacknowledged messages in flight for
  MQTT 3.1.1 clients. An MQTT 5 client's own Receive Maximum is its window either way
  (measured: 65,535 received unacknowledged with this at 0, 1000 or 65,535).
- `persistence true` (both): a restarted broker still holds the sessions and queued messages.

The stock settings (`tuned=False`) are Mosquitto's defaults, like the machine's broker.
Mosquitto 2.0.11's own quirks a consumer must survive: see `daemon/sources/mqtt/inflight.py`.
"""

from __future__ import annotations

import contextlib
import getpass
import signal
import socket
import subprocess
import time
from pathlib import Path

MOSQUITTO = "/usr/sbin/mosquitto"
TUNED_SETTINGS = {
    "max_inflight_messages": "0",
    "max_queued_messages": "0",
    "max_queued_bytes": str(1 << 30),  # 1 GiB a client: bounded, far above any test's stream
}
_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def accepts(port: int, timeout_s: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s):
            return True
    except OSError:
        return False


class Mosquitto:
    """`/usr/sbin/mosquitto -c <tmp>/mosquitto.conf`, started at once, on 127.0.0.1:`port`."""

    def __init__(self, tmp_path: Path, *, tuned: bool, extra: dict[str, str] | None = None):
        self.dir = tmp_path / "mosquitto"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tuned = tuned
        self.port = free_port()
        self.config = self.dir / "mosquitto.conf"
        self.log = self.dir / "mosquitto.log"
        settings = {
            "allow_anonymous": "true",
            "persistence": "true",
            "persistence_location": f"{self.dir}/",
            "persistence_file": "mosquitto.db",
            "autosave_interval": "0",  # saved at shutdown (a restart), not on a timer
            "log_dest": f"file {self.log}",
            "log_type": "error warning notice information",
            "user": getpass.getuser(),  # stay who we are: the persistence dir is ours
            **(TUNED_SETTINGS if tuned else {}),
            **(extra or {}),
        }
        lines = [f"listener {self.port} 127.0.0.1", *(f"{k} {v}" for k, v in settings.items())]
        self.config.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the broker and wait until it accepts TCP connections."""
        assert self.proc is None, "already running"
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not accepts(self.port):
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                self.proc = None
                raise RuntimeError(f"mosquitto exited at start: {err} {self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mosquitto not accepting on {self.port}: {self.log_tail()}")
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM (the broker saves its persistence file), SIGKILL if it lingers."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()

    def restart(self) -> None:
        """Stop and start again on the same port, with the same persistence."""
        self.stop()
        self.start()

    def log_tail(self, chars: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text()[-chars:]
        return ""
