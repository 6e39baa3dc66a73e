"""Sinks: where readings end up. Importing this package registers every built-in sink."""

from daemon.sinks.blackhole import BlackholeSink
from daemon.sinks.console import ConsoleSink
from daemon.sinks.encode import WireEncoder, encode_batch, encode_derived, encode_for_sink
from daemon.sinks.jsonl import JsonlSink

__all__ = [
    "BlackholeSink",
    "ConsoleSink",
    "JsonlSink",
    "WireEncoder",
    "encode_batch",
    "encode_derived",
    "encode_for_sink",
]
