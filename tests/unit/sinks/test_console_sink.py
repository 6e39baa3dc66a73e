"""The console sink writes the wire lines to the chosen stream; a closed stream is a SinkError."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Literal

import pytest

from daemon.batch import Batch
from daemon.components import SinkError
from daemon.sinks.console import ConsoleSink
from daemon.wire import encode_batch
from tests.support import TestContext

Stream = Literal["stdout", "stderr"]


def make_sink(tmp_path: Path, stream: Stream = "stdout") -> ConsoleSink:
    ctx = TestContext("sinks[1]", str(tmp_path / "dead-letter.jsonl"))
    return ConsoleSink(ConsoleSink.Config(stream=stream), ctx)


def readings(first: int) -> Batch:
    return Batch.of_sensor("console-S1", [first, first + 1], [1.7e9, 1.7e9 + 1], [1.5, -2.0])


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
async def test_writes_lines_to_the_chosen_stream(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes], stream: Stream
) -> None:
    sink = make_sink(tmp_path, stream)
    await sink.open()
    await sink.write(readings(0))
    await sink.write(readings(2))
    await sink.flush()
    await sink.close()
    out, err = capsysbinary.readouterr()
    expected = encode_batch(readings(0)) + encode_batch(readings(2))
    assert (out, err) == ((expected, b"") if stream == "stdout" else (b"", expected))


async def test_text_only_stream_gets_the_same_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = io.StringIO()  # no .buffer
    monkeypatch.setattr(sys, "stdout", text)
    sink = make_sink(tmp_path)
    await sink.write(readings(0))
    assert text.getvalue().encode() == encode_batch(readings(0))


async def test_closed_stream_is_a_sink_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = io.TextIOWrapper(io.BytesIO())
    closed.close()
    monkeypatch.setattr(sys, "stdout", closed)
    with pytest.raises(SinkError, match="stdout"):
        await make_sink(tmp_path).write(readings(0))


async def test_missing_stream_is_a_sink_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stderr", None)
    with pytest.raises(SinkError, match="stderr"):
        await make_sink(tmp_path, "stderr").write(readings(0))
