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
import structlog.testing

from daemon.batch import Batch
from daemon.config.fields import ConfigIssue, build
from daemon.registry import REGISTRY
from daemon.sensors import SENSORS
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


async def delivered(src: FileSource) -> AsyncIterator[Batch]:
    """The source's batches, each reported durably taken once consumed, as the pipeline does."""
    async for batch in src.stream():
        mark = src.checkpoint(batch)
        yield batch
        if mark is not None:
            src.taken(mark)


async def replay(ctx: TestContext, path: Path, **config: Any) -> list[Batch]:
    src = FileSource(Config(path=str(path), **config), ctx)
    await src.open()
    try:
        async with asyncio.timeout(30):
            return [batch async for batch in delivered(src)]
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
    path = str(write(tmp_path, "in.csv", text))
    src = FileSource(Config(path=path, on_error="exit"), new_ctx(tmp_path))
    with pytest.raises(FileSourceError, match=re.escape(words)):
        await src.open()
    await src.close()


async def test_a_missing_file_fails_at_open_when_told_to_exit(tmp_path: Path) -> None:
    src = FileSource(Config(path=str(tmp_path / "nope.jsonl"), on_error="exit"), new_ctx(tmp_path))
    with pytest.raises(FileSourceError, match=re.escape("nope.jsonl")):
        await src.open()


async def test_a_missing_file_is_waited_for_with_backoff_and_logged(tmp_path: Path) -> None:
    path = tmp_path / "later.jsonl"
    ctx = new_ctx(tmp_path)
    src = FileSource(Config(path=str(path), retry_max_s=0.2), ctx)
    with structlog.testing.capture_logs() as logs:
        await src.open()  # does not raise: the stream waits for the file
        stream = src.stream()
        first = asyncio.ensure_future(anext(stream))
        async with asyncio.timeout(10):  # until it has failed and retried a few times
            while True:
                if sum(e["event"] == "source_failed" for e in logs) >= 3:
                    break
                await asyncio.sleep(0.05)
        assert not first.done()
        path.write_text('{"sensor_id":"LATE","seq":0,"ts":1,"value":2}\n')
        async with asyncio.timeout(10):
            batch = await first
    assert batch.seq.tolist() == [0]
    waits = [e["retry_in_s"] for e in logs if e["event"] == "source_failed"]
    assert waits[0] == 0.0 and waits[1:] == sorted(waits[1:]) and max(waits) <= 0.2
    await stream.aclose()
    await src.close()


async def test_a_stop_ends_the_wait_for_a_missing_file(tmp_path: Path) -> None:
    ctx = new_ctx(tmp_path)
    src = FileSource(Config(path=str(tmp_path / "never.jsonl")), ctx)
    await src.open()
    ctx.lifetime.stop.set()
    async with asyncio.timeout(2):
        assert [b async for b in src.stream()] == []


@pytest.mark.parametrize("what", ["directory", "device"])
def test_what_can_never_be_replayed_is_a_config_error(tmp_path: Path, what: str) -> None:
    path = str(tmp_path) if what == "directory" else "/dev/zero"
    (problem,) = Config(path=path, format="jsonl").check()
    assert problem[0] == "path" and ("directory" in problem[1] or "regular" in problem[1])


async def test_a_file_without_line_ends_cannot_hold_off_a_stop(tmp_path: Path) -> None:
    path = tmp_path / "zeros.jsonl"
    with path.open("wb") as fh:
        fh.truncate(64 * 1024 * 1024)  # 64 MiB of zero bytes, sparse: no newline anywhere
    ctx = new_ctx(tmp_path)
    src = FileSource(Config(path=str(path), read_bytes=65536), ctx)
    await src.open()
    stream = src.stream()
    pending = asyncio.ensure_future(anext(stream, None))
    await asyncio.sleep(0.05)  # let it read a while: the fault under test is a long read
    ctx.lifetime.stop.set()
    async with asyncio.timeout(2):
        assert await pending is None
    await src.close()


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
    async for batch in delivered(first):
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


async def restarted_replay(tmp_path: Path, path: Path, **config: Any) -> list[Batch]:
    """A replay by a new process: a fresh context over the same state directory, whose state
    the last run flushed (as the pipeline does at the end of a generation)."""
    ctx = TestContext("sources[0]", str(tmp_path / "dead-letter.jsonl"), state_dir=str(tmp_path))
    try:
        return await replay(ctx, path, **config)
    finally:
        ctx.state.store.flush()


async def test_a_restart_resumes_after_the_last_taken_batch_by_seeking(tmp_path: Path) -> None:
    lines = [f"RST,{i},{i},{i}" for i in range(3000)]
    path = write(tmp_path, "in.csv", "sensor_id,seq,ts,value\n" + "\n".join(lines) + "\n")
    ctx = TestContext("sources[0]", str(tmp_path / "dead-letter.jsonl"), state_dir=str(tmp_path))
    first = FileSource(Config(path=str(path), max_batch=100, read_bytes=4096), ctx)
    await first.open()
    seqs: list[int] = []
    async for batch in delivered(first):
        seqs += batch.seq.tolist()
        if len(seqs) >= 2000:
            ctx.lifetime.stop.set()
    await first.close()
    ctx.state.store.flush()
    saved = ctx.state.store.load(f"file:{path}")
    assert saved is not None
    assert saved["next_line"] == len(seqs) + 2  # the header is line 1
    assert saved["chunk_offset"] > 0  # a chunk past the header's: the restart seeks there
    with structlog.testing.capture_logs() as logs:
        rest = await restarted_replay(tmp_path, path, max_batch=100, read_bytes=4096)
    seqs += [s for b in rest for s in b.seq.tolist()]
    assert seqs == list(range(3000))  # no repeat, no gap
    assert [e["event"] for e in logs if e["event"].startswith("source_")] == ["source_resumed"]
    assert await restarted_replay(tmp_path, path, max_batch=100) == []  # all delivered already


@pytest.mark.parametrize("change", ["replaced", "truncated"])
async def test_a_replaced_or_truncated_file_is_read_from_its_start(
    tmp_path: Path, change: str
) -> None:
    text = "".join(f'{{"sensor_id":"TR","seq":{i},"ts":{i},"value":1}}\n' for i in range(500))
    path = write(tmp_path, "in.jsonl", text)
    first = await restarted_replay(tmp_path, path, read_bytes=4096)
    assert sum(len(b) for b in first) == 500
    if change == "replaced":
        path.unlink()
        # as long as the old one, and quite possibly given the old one's inode number
        write(tmp_path, "in.jsonl", text.replace('"TR"', '"TZ"'))
    else:
        with path.open("r+b") as fh:
            fh.truncate(100)
    with structlog.testing.capture_logs() as logs:
        again = await restarted_replay(tmp_path, path, read_bytes=4096)
    assert [e.get("reason") for e in logs if e["event"] == "source_position_reset"] == [change]
    assert len(again) >= 1 and int(again[0].seq[0]) == 0  # from its start


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
async def test_every_reading_keeps_its_own_unit(tmp_path: Path, fmt: str) -> None:
    if fmt == "csv":
        text = "sensor_id,seq,ts,value,unit\nUNIT1,0,1,1,celsius\nUNIT1,1,2,280,kelvin\n"
    else:
        text = (
            '{"sensor_id":"UNIT2","seq":0,"ts":1,"value":1,"unit":"celsius"}\n'
            '{"sensor_id":"UNIT2","seq":1,"ts":2,"value":280,"unit":"kelvin"}\n'
        )
    batches = await replay(new_ctx(tmp_path), write(tmp_path, f"u.{fmt}", text))
    units = [SENSORS.unit(int(i)) for b in batches for i in b.sensor]
    assert units == ["celsius", "kelvin"]  # not the first unit its id was seen with
