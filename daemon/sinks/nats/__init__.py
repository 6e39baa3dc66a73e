"""The `nats` publish sink: its keys (`config.py`) and the sink (`sink.py`)."""

from daemon.sinks.nats.config import NatsSinkConfig
from daemon.sinks.nats.sink import NatsSink

__all__ = ["NatsSink", "NatsSinkConfig"]
