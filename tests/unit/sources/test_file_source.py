"""The file source: CSV and JSON-lines replay, rejects, pacing, stop and constant memory."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from daemon.batch import Batch
from daemon.config.fields import ConfigIssue, build
from daemon.registry import REGISTRY
from daemon.sources.file import FileSource, FileSourceError
from tests.support import TestContext

Config = FileSource.Config


def new_ctx(tmp_path: Path) -> TestContext:
    return TestContext("sources[1]", str(tmp_path / "dead-letter.jsonl"))


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


async def replay(ctx: TestContext, path: Path, **config: Any) -> list[Batch]:
    src = FileSource(Config(path=str(path), **config), ctx)
    await src.open()
    try:
        async with asyncio.timeout(30):
            return [batch async for batch in src.stream()]
    finally:
        await src.close()


def records(batches: list[Batch]) -> list[tuple[Any, ...]]:
    return [
        (r["sensor_id"], r["seq"], r["ts"], r["value"], r["unit"], r["quality"])
        for b in batches
        for r in b.to_records()
    ]


def dead_letters(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "dead-letter.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


async def test_registered_and_format_checked() -> None:
    entry = REGISTRY.get("source", "file")
    assert entry is not None and entry.cls is FileSource
    issues: list[ConfigIssue] = []
    assert build(Config, {"path": "readings.txt"}, "sources[1]", issues) is None
    assert [i.path for i in issues] == ["sources[1].format"]
    assert build(Config, {"path": "readings.txt", "format": "csv"}, "s", []) is not None
    assert build(Config, {"path": "r.ndjson"}, "s", []) is not None
    issues = []
    assert build(Config, {"format": "jsonl"}, "sources[1]", issues) is None
    assert [str(i) for i in issues] == ["sources[1].path: is required"]


async def test_csv_replays_every_row_in_file_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "in.csv",
        "sensor_id,seq,ts,value,unit,quality\n"
        "CSV-A,0,2026-11-21T22:48:23.123456Z,51.25,celsius,ok\n"
        "CSV-B,7,1795301304.5,-3,percent,stale\n"
        "CSV-A,1,2026-11-21T22:48:24+02:00,52,celsius,\n",
    )
    ctx = new_ctx(tmp_path)
    assert records(await replay(ctx, path)) == [
        ("CSV-A", 0, epoch("2026-11-21T22:48:23.123456+00:00"), 51.25, "celsius", "ok"),
        ("CSV-B", 7, 1795301304.5, -3.0, "percent", "stale"),
        ("CSV-A", 1, epoch("2026-11-21T22:48:24+02:00"), 52.0, "celsius", "ok"),
    ]
    assert ctx.counters.read == 0 and ctx.counters.rejected == 0  # the topology counts reads
    assert dead_letters(tmp_path) == []


async def test_csv_columns_by_header_name_with_crlf_and_bom(tmp_path: Path) -> None:
    text = "\ufeffvalue,extra,ts,seq,sensor_id\r\n1.5,x,10,3,CRLF-A\r\n2.5,y,11,4,CRLF-A"
    path = write(tmp_path, "in.csv", text)
    assert records(await replay(new_ctx(tmp_path), path)) == [
        ("CRLF-A", 3, 10.0, 1.5, "", "ok"),
        ("CRLF-A", 4, 11.0, 2.5, "", "ok"),
    ]


async def test_jsonl_replays_and_ignores_extra_keys(tmp_path: Path) -> None:
    lines = [
        {"sensor_id": "JS-A", "seq": 0, "ts": "2026-11-21T22:48:23Z", "value": 1.5, "x": [1]},
        {
            "sensor_id": "JS-B",
            "seq": 5,
            "ts": 1795301303.25,
            "value": 2,
            "quality": "stale",
            "unit": "percent",
        },
    ]
    path = write(tmp_path, "in.jsonl", "".join(json.dumps(o) + "\n" for o in lines) + "\n")
    assert records(await replay(new_ctx(tmp_path), path)) == [
        ("JS-A", 0, epoch("2026-11-21T22:48:23+00:00"), 1.5, "", "ok"),
        ("JS-B", 5, 1795301303.25, 2.0, "percent", "stale"),
    ]


async def test_batches_hold_at_most_max_batch_rows_in_file_order(tmp_path: Path) -> None:
    rows = "".join(f"ORD-{i % 3},{i // 3},{i},{i}\n" for i in range(10))
    path = write(tmp_path, "in.csv", "sensor_id,seq,ts,value\n" + rows)
    batches = await replay(new_ctx(tmp_path), path, max_batch=3)
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    assert [r[3] for r in records(batches)] == [float(i) for i in range(10)]


async def test_malformed_csv_lines_are_dead_lettered_and_replay_continues(tmp_path: Path) -> None:
    lines = [
        "sensor_id,seq,ts,value,quality",
        "BAD-A,0,1,1.0,ok",  # 2 good
        "BAD-A,x,2,2.0,ok",  # 3 seq not an integer
        "BAD-A,1,3,warm,ok",  # 4 value not numeric
        "BAD-A,1,4,nan,ok",  # 5 NaN
        "BAD-A,1,5,inf,ok",  # 6 infinite
        "BAD-A,1,yesterday,6.0,ok",  # 7 bad timestamp
        "BAD-A,1,7",  # 8 missing fields
        "BAD-A,1,8,8.0,great",  # 9 bad quality
        ",1,9,9.0,ok",  # 10 empty sensor_id
        "BAD-A,-1,10,10.0,ok",  # 11 negative seq
        "BAD-A,1.5,11,11.0,ok",  # 12 fractional seq
        "BAD-A,1,2026-13-01T00:00:00Z,12.0,ok",  # 13 month 13
        "BAD-A,1,12,12.0,stale",  # 14 good
    ]
    path = write(tmp_path, "in.csv", "\n".join(lines) + "\n")
    ctx = new_ctx(tmp_path)
    got = records(await replay(ctx, path))
    assert [(r[1], r[3], r[5]) for r in got] == [(0, 1.0, "ok"), (1, 12.0, "stale")]
    rejected = dead_letters(tmp_path)
    assert [r["line"] for r in rejected] == list(range(3, 14))
    assert all(r["source"] == "sources[1]" for r in rejected)
    assert [r["raw"] for r in rejected] == lines[2:13]
    reasons = [r["reason"] for r in rejected]
    for line, words in {
        3: "seq",
        4: "value",
        5: "finite",
        6: "finite",
        7: "timestamp",
        8: "fields",
        9: "quality",
        10: "sensor_id",
        11: "seq",
        12: "seq",
        13: "timestamp",
    }.items():
        assert words in reasons[line - 3], (line, reasons[line - 3])
    assert ctx.counters.rejected == 11 and ctx.counters.read == 11


async def test_malformed_json_lines_are_dead_lettered(tmp_path: Path) -> None:
    good = '{"sensor_id":"JB","seq":0,"ts":1,"value":1}'
    lines = [
        good,
        '{"sensor_id":"JB","seq":1,"ts":1,"value":1',  # 2 truncated JSON
        '{"sensor_id":"JB","ts":1,"value":1}',  # 3 no seq
        '{"sensor_id":"JB","seq":1.5,"ts":1,"value":1}',  # 4 fractional seq
        '{"sensor_id":"JB","seq":1,"ts":1,"value":"1"}',  # 5 value as text
        '{"sensor_id":"JB","seq":1,"ts":"soon","value":1}',  # 6 bad timestamp
        "[1, 2]",  # 7 not an object
        '{"sensor_id":"JB","seq":1,"ts":1,"value":true}',  # 8 boolean value
        '{"sensor_id":"JB","seq":1,"ts":1,"value":1e999}',  # 9 overflow to inf
        '{"sensor_id":"JB","seq":1,"ts":2,"value":2}',  # 10 good
    ]
    path = write(tmp_path, "in.jsonl", "\n".join(lines))
    ctx = new_ctx(tmp_path)
    got = records(await replay(ctx, path))
    assert [(r[1], r[3]) for r in got] == [(0, 1.0), (1, 2.0)]
    rejected = dead_letters(tmp_path)
    assert [r["line"] for r in rejected] == list(range(2, 10))
    assert [r["raw"] for r in rejected] == lines[1:9]
    assert "missing field 'seq'" in rejected[1]["reason"]
    assert "seq" in rejected[2]["reason"] and "value" in rejected[3]["reason"]
    assert "timestamp" in rejected[4]["reason"] and "object" in rejected[5]["reason"]
    assert ctx.counters.rejected == 8 and ctx.counters.read == 8


async def test_line_numbers_hold_across_chunks_and_overlong_lines(tmp_path: Path) -> None:
    rows = [f"LN,{i},{i},{i}.5" for i in range(3000)]
    rows[776] = "LN,oops,1,1"  # line 778 (after the header)
    rows[1500] = "LN,1500,1," + "9" * 5000  # line 1502: longer than max_line_bytes
    rows[2998] = "LN,2998,1"  # line 3000
    path = write(tmp_path, "in.csv", "sensor_id,seq,ts,value\n" + "\n".join(rows) + "\n")
    ctx = new_ctx(tmp_path)
    got = records(await replay(ctx, path, read_bytes=4096, max_line_bytes=1024))
    assert len(got) == 2997
    rejected = dead_letters(tmp_path)
    assert [r["line"] for r in rejected] == [778, 1502, 3000]
    assert rejected[1]["reason"] == "line longer than 1024 bytes"
    assert rejected[1]["raw"] == rows[1500][:1024]
    assert got[-1][1] == 2999


def csv_of(path: Path, rows: int) -> Path:
    with path.open("w") as fh:
        fh.write("sensor_id,seq,ts,value,unit,quality\n")
        for start in range(0, rows, 10_000):
            fh.write(
                "".join(
                    f"MEM-{i % 50},{i},{1795301303 + i / 1000:.3f},{i % 97}.25,celsius,ok\n"
                    for i in range(start, min(rows, start + 10_000))
                )
            )
    return path


async def peak_memory_of_replay(tmp_path: Path, path: Path) -> tuple[int, int]:
    """(readings replayed, peak bytes allocated meanwhile)."""
    src = FileSource(Config(path=str(path), read_bytes=64 * 1024), new_ctx(tmp_path))
    tracemalloc.start()
    try:
        rows = 0
        await src.open()
        async for batch in src.stream():
            rows += len(batch)
        await src.close()
        return rows, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def test_replay_streams_a_large_file_in_constant_memory(tmp_path: Path) -> None:
    small = csv_of(tmp_path / "small.csv", 15_000)
    large = csv_of(tmp_path / "large.csv", 60_000)
    rows_small, peak_small = await peak_memory_of_replay(tmp_path, small)
    rows_large, peak_large = await peak_memory_of_replay(tmp_path, large)
    assert (rows_small, rows_large) == (15_000, 60_000)
    size = large.stat().st_size
    # Memory follows the read size (64 KiB), not the file: holding the file would take more.
    assert peak_large < 16 * 64 * 1024 < size, f"peak {peak_large} bytes, file {size}"
    assert peak_large < peak_small * 1.25 + 50_000  # four times the file, not more memory


async def test_rate_hz_paces_the_replay(tmp_path: Path) -> None:
    rows = "".join(f"PACE,{i},{i},1\n" for i in range(40))
    path = write(tmp_path, "in.csv", "sensor_id,seq,ts,value\n" + rows)
    start = time.perf_counter()
    batches = await replay(new_ctx(tmp_path), path, rate_hz=200.0)
    elapsed = time.perf_counter() - start
    assert sum(len(b) for b in batches) == 40
    assert max(len(b) for b in batches) <= 10  # about 50 ms worth each
    assert 39 / 200 - 0.01 <= elapsed < 39 / 200 + 1.0  # the 40th is due 39/200 s in


async def test_stop_ends_the_replay_even_while_pacing(tmp_path: Path) -> None:
    rows = "".join(f"STOP,{i},{i},1\n" for i in range(10))
    path = write(tmp_path, "in.csv", "sensor_id,seq,ts,value\n" + rows)
    ctx = new_ctx(tmp_path)
    src = FileSource(Config(path=str(path), rate_hz=0.5), ctx)  # one reading per 2 s
    await src.open()
    got = 0
    async with asyncio.timeout(5):
        async for batch in src.stream():
            got += len(batch)
            ctx.lifetime.stop.set()
            stopped_at = time.perf_counter()
    await src.close()
    assert got == 1
    assert time.perf_counter() - stopped_at < 0.5


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("sensor_id,seq,ts\nA,1,2\n", "lacks ['value']"),
        ("sensor_id,seq,ts,value,seq\n", "repeats ['seq']"),
    ],
)
async def test_a_file_without_a_usable_header_fails_at_open(
    tmp_path: Path, text: str, words: str
) -> None:
    src = FileSource(Config(path=str(write(tmp_path, "in.csv", text))), new_ctx(tmp_path))
    with pytest.raises(FileSourceError, match=re.escape(words)):
        await src.open()
    await src.close()


async def test_a_missing_file_fails_at_open(tmp_path: Path) -> None:
    src = FileSource(Config(path=str(tmp_path / "nope.jsonl")), new_ctx(tmp_path))
    with pytest.raises(FileSourceError, match=re.escape("nope.jsonl")):
        await src.open()


async def test_a_rebuilt_source_resumes_the_replay_without_repeats(tmp_path: Path) -> None:
    lines = [f"RES,{i},{i},{i}" for i in range(1000)]
    for bad in (5, 260, 700):  # before, inside and after the chunk being read at the stop
        lines[bad] = f"RES,{bad},{bad},oops"
    path = write(tmp_path, "in.csv", "sensor_id,seq,ts,value\n" + "\n".join(lines) + "\n")
    ctx = new_ctx(tmp_path)
    config = Config(path=str(path), max_batch=10, read_bytes=4096)
    first = FileSource(config, ctx)
    await first.open()
    seqs: list[int] = []
    async for batch in first.stream():
        seqs += batch.seq.tolist()
        if len(seqs) >= 250:
            ctx.lifetime.stop.set()
    await first.close()
    assert len(seqs) == 250

    ctx.new_generation()  # a reload: same carry, a new source
    seqs += [s for b in await replay(ctx, path, max_batch=10, read_bytes=4096) for s in b.seq]
    assert seqs == [i for i in range(1000) if i not in (5, 260, 700)]
    assert [r["line"] for r in dead_letters(tmp_path)] == [7, 262, 702]
    assert ctx.counters.rejected == 3


async def test_force_ends_the_replay_at_once(tmp_path: Path) -> None:
    rows = "".join(f"FORCE,{i},{i},1\n" for i in range(100))
    path = write(tmp_path, "in.csv", "sensor_id,seq,ts,value\n" + rows)
    ctx = new_ctx(tmp_path)
    src = FileSource(Config(path=str(path), max_batch=10), ctx)
    await src.open()
    got = [b async for b in _forcing(ctx, src)]
    await src.close()
    assert len(got) == 1


async def _forcing(ctx: TestContext, src: FileSource) -> AsyncIterator[Batch]:
    async for batch in src.stream():
        ctx.lifetime.force.set()
        yield batch
