"""The `file` source: replays CSV or JSON-lines files, dead-lettering malformed lines."""

from daemon.sources.file.source import FileSource, FileSourceError

__all__ = ["FileSource", "FileSourceError"]
