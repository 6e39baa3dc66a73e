"""The column-at-a-time parse must agree exactly with the per-line definition on valid input,
and must hand anything doubtful to it."""

from __future__ import annotations

import datetime as dt
import json

import aiofiles
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.sources.file.line_reader import LineReader
from daemon.sources.file.parse import CsvParser, JsonlParser, Rows

HEADER = b"sensor_id,seq,ts,value,unit,quality"

ids = st.text(alphabet="ABCXYZ019_-.", min_size=1, max_size=8)
seqs = st.integers(min_value=0, max_value=2**63 - 1)
values = st.floats(allow_nan=False, allow_infinity=False, width=64)
units = st.sampled_from(["", "celsius", "percent"])
quality = st.sampled_from(["ok", "stale", "interpolated"])
instants = st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2200, 1, 1)).map(
    lambda d: d.replace(tzinfo=dt.UTC)
)
rows = st.lists(st.tuples(ids, seqs, instants, values, units, quality), min_size=1, max_size=40)


def iso(d: dt.datetime, digits: int) -> str:
    """`YYYY-MM-DDTHH:MM:SS[.f]Z` with `digits` fractional digits (one format per file)."""
    text = d.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{d.microsecond:06d}"[:digits]
    return text + "Z"


def assert_same(a: Rows, b: Rows) -> None:
    for name in ("sensor", "seq", "ts", "value", "stale", "line", "interpolated"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@settings(max_examples=60, deadline=None)
@given(rows=rows, digits=st.sampled_from([0, 1, 3, 6]), epoch=st.booleans())
def test_csv_fast_path_equals_the_per_line_definition(
    rows: list[tuple[str, int, dt.datetime, float, str, str]], digits: int, epoch: bool
) -> None:
    parser = CsvParser(HEADER)
    lines = [
        f"{s},{q},{t.timestamp() if epoch else iso(t, digits)},{v!r},{u},{ql}".encode()
        for s, q, t, v, u, ql in rows
    ]
    fast = parser._fast(lines, 2 + np.arange(len(lines)))
    assert fast is not None  # well-formed input takes the fast path
    slow, rejected = parser._per_line(2, lines)
    assert rejected == []
    assert_same(fast, slow)


@settings(max_examples=60, deadline=None)
@given(rows=rows, digits=st.sampled_from([0, 2, 6]), epoch=st.booleans())
def test_jsonl_fast_path_equals_the_per_line_definition(
    rows: list[tuple[str, int, dt.datetime, float, str, str]], digits: int, epoch: bool
) -> None:
    parser = JsonlParser()
    lines = [
        json.dumps(
            {
                "sensor_id": s,
                "seq": q,
                "ts": t.timestamp() if epoch else iso(t, digits),
                "value": v,
                "unit": u,
                "quality": ql,
            }
        ).encode()
        for s, q, t, v, u, ql in rows
    ]
    fast = parser._fast(lines, 1 + np.arange(len(lines)))
    assert fast is not None
    slow, rejected = parser._per_line(1, lines)
    assert rejected == []
    assert_same(fast, slow)


def test_doubtful_chunks_take_the_per_line_path() -> None:
    csv = CsvParser(HEADER)
    good = b"Q,1,10,1.5,,ok"
    for odd in (
        b'"Q",1,10,1.5,,ok',  # quoted field
        b"Q,1,10,1.5,,ok,extra",  # one cell too many ...
        b"Q,1,10,1.5,",  # ... and one too few: the total still matches
        b"Q,1,10,nan,,ok",
        b"Q,1, 2026-01-01T00:00:00Z,1.5,,ok",  # padded: not the strict ISO shape
        b"Q,1,10,1.5,,fine",
    ):
        assert csv._fast([good, odd], np.array([1, 2])) is None, odd
    rows, rejected = csv.parse(5, [good, b"", b'"Q,2",2,11,2.5,,stale'])
    assert rejected == [] and rows.seq.tolist() == [1, 2] and rows.stale.tolist() == [False, True]
    assert rows.line.tolist() == [5, 7]
    rows, _ = csv.parse(5, [good, b"", good])  # the fast path numbers around blank lines too
    assert rows.line.tolist() == [5, 7]

    jsonl = JsonlParser()
    for odd in (b'{"sensor_id":"Q","seq":1,"ts":1,"value":1} {"a":1}', b"1, 2", b"[]"):
        first = b'{"sensor_id":"Q","seq":0,"ts":1,"value":1}'
        assert jsonl._fast([first, odd], np.array([1, 2])) is None


@settings(max_examples=60, deadline=None)
@given(
    body=st.lists(st.text(alphabet="ab,1\r", max_size=30), min_size=0, max_size=40),
    read_bytes=st.integers(4, 64),
    bom=st.booleans(),
)
async def test_every_chunk_says_where_its_first_line_begins(
    tmp_path_factory: pytest.TempPathFactory, body: list[str], read_bytes: int, bom: bool
) -> None:
    """A replay resumes at a chunk's offset: it must be the byte where that chunk's first line
    starts, with a BOM, CRLF endings and lines longer than the limit."""
    raw = (b"\xef\xbb\xbf" if bom else b"") + "\n".join(body).encode() + b"\n"
    path = tmp_path_factory.mktemp("lines") / "f.txt"
    path.write_bytes(raw)
    starts = [0] if not bom else [3]
    for i, byte in enumerate(raw):
        if byte == ord("\n") and i + 1 < len(raw):
            starts.append(i + 1)
    async with aiofiles.open(path, "rb") as fh:
        reader = LineReader(fh, read_bytes=read_bytes, max_line_bytes=16)
        while (chunk := await reader.read()) is not None:
            if not chunk.lines or chunk.first in dict(chunk.overlong):
                continue  # an over-long first line is reported either way, not resumed at
            assert chunk.offset == starts[chunk.first - 1]
            async with aiofiles.open(path, "rb") as again:  # resuming there reads the same
                await again.seek(chunk.offset)
                resumed = LineReader(
                    again,
                    read_bytes=read_bytes,
                    max_line_bytes=16,
                    offset=chunk.offset,
                    line=chunk.first,
                )
                first = await resumed.read()
                while first is not None and not first.lines:  # a read that found no line end
                    first = await resumed.read()
                assert first is not None and first.first == chunk.first
                assert first.lines[0] == chunk.lines[0]
