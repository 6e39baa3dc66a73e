"""ingestd: ingest sensor readings through streaming stages into sinks, losing none."""

from daemon.batch import Batch
from daemon.components import PermanentSinkError, Sink, SinkError, Source, Stage

__all__ = ["Batch", "PermanentSinkError", "Sink", "SinkError", "Source", "Stage"]
__version__ = "0.1.0"
