"""Spool: order, restarts, the durable cursor, corruption skipped and quarantined, sealing."""

from __future__ import annotations

import resource
import signal
from pathlib import Path

import numpy as np
import pytest
from structlog.testing import capture_logs

from daemon.batch import Batch
from daemon.counters import Counters
from daemon.resilience import Spool, SpooledBatch, decode_batch, encode_batch
from daemon.resilience.records import HEADER, MAGIC, frame


def make_batch(first_seq: int, n: int = 4, sensor: str = "SP-A") -> Batch:
    seq = np.arange(first_seq, first_seq + n)
    return Batch.of_sensor(sensor, seq, seq * 0.1 + 1.7e9, seq * 1.5, seq % 3 == 0, unit="celsius")


def record_size(batch: Batch) -> int:
    return HEADER.size + len(encode_batch(batch))


def open_spool(
    path: Path,
    counters: Counters | None = None,
    *,
    segment_bytes: int = 1 << 20,
    own_from: int | None = None,
) -> Spool:
    spool = Spool(
        path, segment_bytes=segment_bytes, counters=counters or Counters(), own_from=own_from
    )
    spool.open()
    return spool


def drain(spool: Spool) -> list[SpooledBatch]:
    out = []
    while (item := spool.peek()) is not None:
        out.append(item)
        spool.ack(item)
    return out


def first_seqs(items: list[SpooledBatch]) -> list[int]:
    return [int(i.batch.seq[0]) for i in items]


def segment_files(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.suffix in {".seg", ".open"})


def test_codec_round_trip_keeps_every_column_and_sensor_ids() -> None:
    a = make_batch(0, 3, "SP-X")
    b = make_batch(10, 2, "SP-Y")
    a.columns["normalized"] = np.array([0.1, 0.2, 0.3])
    b.columns["normalized"] = np.array([0.4, 0.5])
    batch = Batch.concat([b, a])
    batch.derived.append({"kind": "features", "sensor_id": "SP-X", "mean": np.float64(1.5)})
    back = decode_batch(encode_batch(batch))
    assert back.to_records() == batch.to_records()
    assert list(back.sensor_ids()) == ["SP-Y"] * 2 + ["SP-X"] * 3
    assert back.derived == [{"kind": "features", "sensor_id": "SP-X", "mean": 1.5}]
    back.value[0] = -1.0  # decoded arrays are ordinary, writable arrays
    empty = decode_batch(encode_batch(batch.select(np.zeros(5, dtype=np.bool_))))
    assert len(empty) == 0
    assert list(empty.columns) == ["normalized"]


def test_replays_oldest_first_and_deletes_acknowledged_segments(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    for i in range(5):
        spool.append(make_batch(i * 4))
    assert (spool.pending_batches, spool.pending_readings) == (5, 20)
    assert spool.pending_bytes == 5 * record_size(make_batch(0))
    items = drain(spool)
    assert first_seqs(items) == [0, 4, 8, 12, 16]
    assert not any(i.inherited or i.batch.replayed for i in items)
    assert (spool.pending_batches, spool.pending_readings, spool.pending_bytes) == (0, 0, 0)
    assert segment_files(tmp_path) == []
    spool.append(make_batch(100))  # a fresh segment after the reader caught up
    assert segment_files(tmp_path) == ["0000000001.open"]
    assert first_seqs(drain(spool)) == [100]
    spool.close()


def test_peek_returns_the_same_batch_until_acknowledged(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    spool.append(make_batch(0))
    spool.append(make_batch(4))
    head = spool.peek()
    assert head is not None
    assert spool.peek() is head  # not acknowledged: the same head again
    assert first_seqs([head]) == [0]
    with pytest.raises(ValueError, match="peek"):
        spool.ack(SpooledBatch(head.batch, False, 4, head.segment, head.start, head.end))
    spool.ack(head)
    with pytest.raises(ValueError):
        spool.ack(head)
    spool.close()


def test_restart_replays_inherited_batches(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    for i in range(3):
        spool.append(make_batch(i * 4, sensor="SP-R"))
    spool.close()
    assert segment_files(tmp_path) == ["0000000000.seg"]

    again = open_spool(tmp_path)
    assert (again.pending_batches, again.pending_readings) == (3, 12)
    again.append(make_batch(100, sensor="SP-R"))  # this run's, behind the inherited ones
    items = drain(again)
    assert first_seqs(items) == [0, 4, 8, 100]
    assert [i.inherited for i in items] == [True, True, True, False]
    assert [i.batch.replayed for i in items] == [True, True, True, False]
    assert list(items[0].batch.sensor_ids()) == ["SP-R"] * 4
    again.close()


def test_acknowledged_position_survives_a_crash(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    for i in range(4):
        spool.append(make_batch(i * 4))
    first = spool.peek()
    assert first is not None
    spool.ack(first)
    spool.peek()  # the second is in progress when the process dies (no close)

    after = open_spool(tmp_path)
    assert after.pending_batches == 3
    assert first_seqs(drain(after)) == [4, 8, 12]  # the one in progress again, never the acked


def test_reopened_in_the_same_run_keeps_own_batches_own(tmp_path: Path) -> None:
    earlier = open_spool(tmp_path)
    earlier.append(make_batch(0))
    earlier.close()
    first = open_spool(tmp_path)  # this process starts: segment 0 is inherited
    first.append(make_batch(4))
    first.close()
    reloaded = open_spool(tmp_path, own_from=first.own_from)
    assert [i.inherited for i in drain(reloaded)] == [True, False]


def test_bad_crc_is_skipped_quarantined_counted_and_logged_once(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    batches = [make_batch(i * 4) for i in range(3)]
    for b in batches:
        spool.append(b)
    spool.close()
    seg = tmp_path / "0000000000.seg"
    data = bytearray(seg.read_bytes())
    size = record_size(batches[0])
    data[size + HEADER.size + 20] ^= 0xFF  # a bit flip inside the second payload
    seg.write_bytes(bytes(data))

    counters = Counters()
    with capture_logs() as logs:
        again = open_spool(tmp_path, counters)
        assert again.pending_batches == 3  # counted by headers at open: CRCs at replay
        assert first_seqs(drain(again)) == [0, 8]
    assert counters.spool_corrupt == 1
    events = [e for e in logs if e["event"] == "spool_record_corrupt"]
    assert len(events) == 1
    assert events[0]["reason"] == "bad crc"
    assert (events[0]["offset"], events[0]["bytes"]) == (size, size)
    (quarantined,) = (tmp_path / "quarantine").iterdir()
    assert quarantined.read_bytes() == bytes(data[size : 2 * size])
    assert again.pending_bytes == 0
    again.close()
    assert first_seqs(drain(open_spool(tmp_path, counters))) == []
    assert counters.spool_corrupt == 1  # skipped for good: not found again after a restart


def test_truncated_tail_after_a_crash(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    for i in range(3):
        spool.append(make_batch(i * 4))
    # crash mid-append: the open segment ends in half a record
    seg = tmp_path / "0000000000.open"
    with seg.open("r+b") as fh:
        fh.truncate(seg.stat().st_size - 7)

    counters = Counters()
    again = open_spool(tmp_path, counters)
    assert segment_files(tmp_path) == ["0000000000.seg"]  # sealed on adoption
    assert again.pending_batches == 2
    assert first_seqs(drain(again)) == [0, 4]
    assert counters.spool_corrupt == 1
    assert segment_files(tmp_path) == []


def test_garbage_between_records_is_one_corrupt_region(tmp_path: Path) -> None:
    good = [encode_batch(make_batch(i * 4)) for i in range(2)]
    junk = b"\x00garbage" + MAGIC + b"\xff" * 30 + MAGIC + b"\x01\x00"  # with false magics
    tmp_path.joinpath("0000000007.seg").write_bytes(
        frame(good[0]) + good[0] + junk + frame(good[1]) + good[1]
    )
    counters = Counters()
    spool = open_spool(tmp_path, counters)
    assert first_seqs(drain(spool)) == [0, 4]
    assert counters.spool_corrupt == 1
    (quarantined,) = (tmp_path / "quarantine").iterdir()
    assert quarantined.read_bytes() == junk


def test_valid_crc_but_undecodable_payload_is_skipped(tmp_path: Path) -> None:
    good = encode_batch(make_batch(0))
    bogus = b"\x04\x00\x00\x00\x02\x00\x00\x00{}"
    tmp_path.joinpath("0000000000.seg").write_bytes(frame(bogus) + bogus + frame(good) + good)
    counters = Counters()
    spool = open_spool(tmp_path, counters)
    assert first_seqs(drain(spool)) == [0]
    assert counters.spool_corrupt == 1
    assert (spool.pending_batches, spool.pending_readings, spool.pending_bytes) == (0, 0, 0)


def test_segments_rotate_and_seal_by_atomic_rename(tmp_path: Path) -> None:
    size = record_size(make_batch(0))
    spool = open_spool(tmp_path, segment_bytes=2 * size)
    for i in range(5):
        spool.append(make_batch(i * 4))
    assert segment_files(tmp_path) == ["0000000000.seg", "0000000001.seg", "0000000002.open"]
    first = spool.peek()
    assert first is not None
    spool.ack(first)
    assert segment_files(tmp_path)[0] == "0000000000.seg"  # half acknowledged: kept
    second = spool.peek()
    assert second is not None
    spool.ack(second)
    assert segment_files(tmp_path) == ["0000000001.seg", "0000000002.open"]
    spool.close()
    assert segment_files(tmp_path) == ["0000000001.seg", "0000000002.seg"]

    again = open_spool(tmp_path, segment_bytes=2 * size)
    assert first_seqs(drain(again)) == [8, 12, 16]
    again.append(make_batch(40))
    assert segment_files(tmp_path) == ["0000000003.open"]  # numbers never go back


def test_append_failure_leaves_no_half_record(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    spool.append(make_batch(0))
    seg = tmp_path / "0000000000.open"
    before = seg.stat().st_size
    # The file may grow by 10 bytes only: the next append writes part of its record, then
    # fails with EFBIG, as a full disk would.
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (before + 10, old_limit[1]))
    try:
        with pytest.raises(OSError):
            spool.append(make_batch(4))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)
    assert seg.stat().st_size == before
    assert spool.pending_batches == 1
    spool.append(make_batch(8))
    counters = Counters()
    spool.close()
    assert first_seqs(drain(open_spool(tmp_path, counters))) == [0, 8]
    assert counters.spool_corrupt == 0


def test_torn_cursor_write_falls_back_to_the_previous_position(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    for i in range(3):
        spool.append(make_batch(i * 4))
    for _ in range(2):
        head = spool.peek()
        assert head is not None
        spool.ack(head)
    cursor = tmp_path / "cursor"
    data = bytearray(cursor.read_bytes())
    data[0:8] = b"\x00" * 8  # generation 2 went to slot 0: tear it
    cursor.write_bytes(bytes(data))
    assert first_seqs(drain(open_spool(tmp_path))) == [4, 8]  # one redelivered, none lost
