"""The `jsonl` sink: JSON lines in a file, with rotation and an fsync policy."""

from daemon.sinks.jsonl.sink import JsonlSink

__all__ = ["JsonlSink"]
