"""The `nats` source: a durable JetStream pull consumer; messages acked once durably taken."""

from daemon.sources.nats.consumer import NatsBindError
from daemon.sources.nats.source import NatsConfig, NatsSource

__all__ = ["NatsBindError", "NatsConfig", "NatsSource"]
