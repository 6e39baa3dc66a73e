"""The built-in sources. Importing this package registers each of them by name."""

from daemon.sources.file import FileSource, FileSourceError
from daemon.sources.simulated import SimulatedSource

__all__ = ["FileSource", "FileSourceError", "SimulatedSource"]
