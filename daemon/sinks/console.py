"""`console`: the wire lines on stdout or stderr, for demos and piping into `jq`.

The stream is looked up at every write (so a swapped `sys.stdout`, e.g. under a test runner, is
honoured) and written from a worker thread, so a slow reader on the pipe slows this sink (and,
through backpressure, the pipeline) but never stalls the event loop. Each batch is one write to
the stream's binary buffer, the same buffer the stdout logger writes whole lines to, so a log
line and a reading line never interleave mid-line.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from typing import Annotated, Literal, TextIO

from daemon.batch import Batch
from daemon.components import Sink, SinkError
from daemon.runtime import ComponentContext
from daemon.wire.encode import encode_for_sink


@dataclass(frozen=True)
class ConsoleConfig:
    """The `console` sink's keys."""

    stream: Annotated[Literal["stdout", "stderr"], "where the lines go"] = "stdout"


class ConsoleSink(Sink[ConsoleConfig], name="console"):
    """Prints readings as JSON lines to stdout or stderr (which may also carry the logs)."""

    def __init__(self, config: ConsoleConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)

    async def write(self, batch: Batch) -> None:
        data = encode_for_sink(batch)
        if data:
            await asyncio.to_thread(self._write_blocking, data)

    async def flush(self) -> None:
        """Nothing to do: every write is flushed to the stream before it returns."""

    def _write_blocking(self, data: bytes | memoryview) -> None:
        stream: TextIO | None = sys.stdout if self.config.stream == "stdout" else sys.stderr
        if stream is None:  # e.g. started with the stream closed
            raise SinkError(f"no {self.config.stream} to write to")
        try:
            buffer = getattr(stream, "buffer", None)
            if buffer is not None:
                stream.flush()  # text printed before this batch goes out before it
                buffer.write(data)
                buffer.flush()
            else:
                stream.write(bytes(data).decode("utf-8"))
                stream.flush()
        except (OSError, ValueError) as exc:  # ValueError: the stream was closed
            raise SinkError(f"cannot write to {self.config.stream}: {exc}") from exc
