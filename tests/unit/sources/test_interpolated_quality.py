"""`quality = "interpolated"`: every place that writes a reading's quality says the same for
every row (the wire encoder, inline and in its child process, the spool, `to_records`), and a
file ingestd wrote replays with the qualities it was written with."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import orjson

from daemon.batch import QUALITIES, Batch
from daemon.resilience.codec import decode_batch
from daemon.resilience.codec import encode_batch as spool_encode
from daemon.sensors import SENSORS
from daemon.sources.file.parse import CsvParser, JsonlParser
from daemon.wire.ahead import EncodeAhead
from daemon.wire.encode import encode_batch, wire_bytes

QUALITY = ["ok", "stale", "interpolated", "ok", "interpolated", "stale", "ok", "ok"]


def mixed(prefix: str = "IQ") -> Batch:
    """Eight readings of two sensors, one of each quality at least, with a stage column."""
    n = len(QUALITY)
    sensor = np.array([SENSORS.intern(f"{prefix}{i % 2}", "celsius") for i in range(n)], np.int32)
    seq = np.arange(n)
    value = np.round(20.0 + np.arange(n) * 0.125, 3)
    code = np.array([QUALITIES.index(q) for q in QUALITY])
    return Batch.from_columns(
        sensor,
        seq,
        1.79e9 + seq * 0.01,
        value,
        code > 0,
        columns={"normalized": value / 100},
        interpolated=code == 2,
    )


def wire_qualities(data: bytes) -> list[str]:
    return [orjson.loads(line)["quality"] for line in data.splitlines()]


def test_the_wire_and_to_records_agree() -> None:
    batch = mixed()
    assert [r["quality"] for r in batch.to_records()] == QUALITY
    assert wire_qualities(encode_batch(batch)) == QUALITY
    without = Batch.from_columns(batch.sensor, batch.seq, batch.ts, batch.value, batch.stale)
    assert wire_qualities(encode_batch(without)) == [  # knowing only `stale`: never "ok"
        "ok" if q == "ok" else "stale" for q in QUALITY
    ]


def test_select_concat_and_part_keep_the_quality() -> None:
    batch = mixed()
    keep = np.array([True, False, True, True, False, True, True, False])
    picked = batch.select(keep)
    expected = [q for q, k in zip(QUALITY, keep, strict=True) if k]
    assert [r["quality"] for r in picked.to_records()] == expected
    plain = Batch.from_columns(batch.sensor[:2], batch.seq[:2], batch.ts[:2], batch.value[:2])
    plain.columns["normalized"] = batch.columns["normalized"][:2]
    both = Batch.concat([plain, batch])
    assert [r["quality"] for r in both.to_records()] == ["ok", "ok", *QUALITY]
    assert Batch.concat([plain, plain]).interpolated is None  # the common case stays None
    assert [r["quality"] for r in batch.part(readings=True, derived=[]).to_records()] == QUALITY
    assert len(batch.part(readings=False, derived=[]).interpolated_mask()) == 0


def test_the_spool_keeps_it_and_reads_an_older_payload() -> None:
    batch = mixed()
    back = decode_batch(spool_encode(batch))
    assert [r["quality"] for r in back.to_records()] == QUALITY
    old = Batch.from_columns(batch.sensor, batch.seq, batch.ts, batch.value, batch.stale)
    decoded = decode_batch(spool_encode(old))  # 0/1 bytes: what an older ingestd wrote
    assert decoded.interpolated is None
    assert decoded.stale.tolist() == old.stale.tolist()


async def test_the_encoder_child_writes_the_same_bytes() -> None:
    batches = [mixed("IQC"), Batch.concat([mixed("IQC"), mixed("IQD")])]

    async def feed() -> AsyncIterator[Batch]:
        for b in batches:
            yield b

    ahead = EncodeAhead(1)
    ahead.start()
    try:
        got = []
        async with asyncio.timeout(20):
            async for b in ahead.stream(feed()):
                view = wire_bytes(b)
                assert view is not None  # encoded by the child, not left to the sink
                got.append(bytes(view))
        assert got == [encode_batch(b) for b in batches]
        assert wire_qualities(got[0]) == QUALITY
    finally:
        await ahead.close()


def test_a_file_ingestd_wrote_replays_with_its_qualities() -> None:
    lines = encode_batch(mixed("IQF")).splitlines()
    rows, rejected = JsonlParser().parse(1, lines)  # the fast path
    assert rejected == []
    assert [r["quality"] for r in rows.batch(0, len(rows)).to_records()] == QUALITY
    lines.append(b'{"sensor_id":"IQF0","seq":9,"ts":1.79e9,"value":1,"quality":"guessed"}')
    rows, rejected = JsonlParser().parse(1, lines)  # one bad line: the per-line path
    assert [r["quality"] for r in rows.batch(0, len(rows)).to_records()] == QUALITY
    assert [(r.line, r.reason) for r in rejected] == [
        (9, "quality must be one of 'ok', 'stale', 'interpolated', got 'guessed'")
    ]

    csv = CsvParser(b"sensor_id,seq,ts,value,quality")
    cells = [f"IQF0,{i},{1.79e9 + i},{i}.5,{q}".encode() for i, q in enumerate(QUALITY)]
    for chunk in (cells, [*cells, b"IQF0,x,1,1,ok"]):  # fast, then per line
        rows, _ = csv.parse(2, chunk)
        batch = rows.batch(0, len(rows))
        assert [QUALITIES[c] for c in batch.quality_codes()] == QUALITY
        assert batch.stale.tolist() == [q != "ok" for q in QUALITY]
