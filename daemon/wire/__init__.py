"""The wire format: batches encoded as JSON lines, vectorised, and the child process that encodes
ahead of the sinks that want bytes."""

from daemon.wire.encode import WireEncoder, encode_batch, encode_derived, encode_for_sink

__all__ = ["WireEncoder", "encode_batch", "encode_derived", "encode_for_sink"]
