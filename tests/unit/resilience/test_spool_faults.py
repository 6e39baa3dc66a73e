"""Spool contents an operator, a crash or a full disk can leave: every loss is logged and
counted (never silent), nothing blocks or raises, memory stays bounded, and the cap holds."""

from __future__ import annotations

import errno
import os
import threading
import tracemalloc
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from structlog.testing import capture_logs

from daemon.batch import Batch
from daemon.counters import Counters
from daemon.resilience import Spool, SpoolFull, encode_batch
from daemon.resilience.cursor import CursorFile, Position
from daemon.resilience.quarantine import COPY_MAX
from daemon.resilience.records import HEADER

SEG = "0000000000.seg"


def make_batch(first_seq: int, n: int = 4) -> Batch:
    seq = np.arange(first_seq, first_seq + n)
    return Batch.of_sensor("SF-A", seq, seq * 0.1 + 1.7e9, seq * 1.5, unit="celsius")


RECORD = HEADER.size + len(encode_batch(make_batch(0)))


def new_spool(path: Path, counters: Counters | None = None, **kw: Any) -> Spool:
    kw.setdefault("segment_bytes", RECORD)  # one batch per segment
    spool = Spool(path, counters=counters or Counters(), **kw)
    spool.open()
    return spool


def filled(path: Path, batches: int, **kw: Any) -> None:
    """A spool an earlier run left with `batches` batches, one per sealed segment."""
    spool = new_spool(path, **kw)
    for i in range(batches):
        spool.append(make_batch(i * 4))
    spool.close()


def drained(spool: Spool) -> list[int]:
    firsts = []
    while (item := spool.peek()) is not None:
        firsts.append(int(item.batch.seq[0]))
        spool.ack(item)
    return firsts


def named(logs: list[MutableMapping[str, Any]], event: str) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == event]


def seg(n: int) -> str:
    return f"{n:010d}.seg"


def test_a_deleted_segment_is_a_gap_reported_lost(tmp_path: Path) -> None:
    filled(tmp_path, 4)
    (tmp_path / seg(1)).unlink()
    (tmp_path / seg(2)).unlink()
    counters = Counters()
    with capture_logs() as logs:
        spool = new_spool(tmp_path, counters)
        assert drained(spool) == [0, 12]
    (lost,) = named(logs, "spool_lost")
    assert (lost["segment"], lost["last_segment"], lost["reason"]) == (
        "0000000001",
        "0000000002",
        "segment missing",
    )
    assert counters.spool_lost == 2


def test_the_head_segment_deleted_is_noticed_through_the_cursor(tmp_path: Path) -> None:
    filled(tmp_path, 3)
    spool = new_spool(tmp_path)
    head = spool.peek()
    assert head is not None
    spool.ack(head)  # the cursor moves to segment 1 (segment 0 is finished)
    spool.close()
    (tmp_path / seg(1)).unlink()  # the one the cursor points at
    counters = Counters()
    with capture_logs() as logs:
        assert drained(new_spool(tmp_path, counters)) == [8]
    assert [e["reason"] for e in named(logs, "spool_lost")] == ["segment missing"]
    assert counters.spool_lost == 1


def test_a_segment_truncated_to_zero_is_lost_not_silent(tmp_path: Path) -> None:
    filled(tmp_path, 3)
    os.truncate(tmp_path / seg(1), 0)
    counters = Counters()
    with capture_logs() as logs:
        assert drained(new_spool(tmp_path, counters)) == [0, 8]
    assert [(e["segment"], e["reason"]) for e in named(logs, "spool_lost")] == [
        (seg(1), "empty segment")
    ]
    assert counters.spool_lost == 1


def test_an_empty_open_segment_a_crash_left_is_removed_quietly(tmp_path: Path) -> None:
    filled(tmp_path, 2)
    (tmp_path / "0000000002.open").touch()  # created, then SIGKILL before the first append
    counters = Counters()
    with capture_logs() as logs:
        assert drained(new_spool(tmp_path, counters)) == [0, 4]
    assert named(logs, "spool_lost") == []
    assert counters.spool_lost == 0


def test_a_cursor_past_existing_segments_replays_them_instead_of_dropping(tmp_path: Path) -> None:
    filled(tmp_path, 3)
    cursor = CursorFile(tmp_path / "cursor")
    cursor.store(Position(99, 0))
    cursor.close()
    counters = Counters()
    with capture_logs() as logs:
        assert drained(new_spool(tmp_path, counters)) == [0, 4, 8]
    (invalid,) = named(logs, "spool_cursor_invalid")
    assert invalid["reason"] == "cursor past existing segments"
    assert invalid["segments"] == [seg(0), seg(1), seg(2)]
    assert counters.spool_corrupt == 1


def test_one_finished_segment_below_the_cursor_is_a_crash_window_not_a_fault(
    tmp_path: Path,
) -> None:
    filled(tmp_path, 3)
    cursor = CursorFile(tmp_path / "cursor")
    cursor.store(Position(1, 0))  # segment 0 done; the crash came before its deletion
    cursor.close()
    counters = Counters()
    with capture_logs() as logs:
        assert drained(new_spool(tmp_path, counters)) == [4, 8]
    assert named(logs, "spool_cursor_invalid") == named(logs, "spool_lost") == []
    assert (counters.spool_corrupt, counters.spool_lost) == (0, 0)


def test_a_head_segment_cut_below_the_acknowledged_position_is_lost(tmp_path: Path) -> None:
    spool = new_spool(tmp_path, segment_bytes=10 * RECORD)
    for i in range(4):
        spool.append(make_batch(i * 4))
    spool.close()
    again = new_spool(tmp_path, segment_bytes=10 * RECORD)
    for _ in range(3):
        head = again.peek()
        assert head is not None
        again.ack(head)
    again.close()
    os.truncate(tmp_path / seg(0), RECORD)  # the cursor is at 3 * RECORD
    counters = Counters()
    with capture_logs() as logs:
        assert drained(new_spool(tmp_path, counters, segment_bytes=10 * RECORD)) == []
    (lost,) = named(logs, "spool_lost")
    assert lost["reason"] == "segment shorter than the acknowledged position"
    assert counters.spool_lost == 1


def test_a_directory_a_fifo_and_a_file_named_quarantine_do_not_stop_it(tmp_path: Path) -> None:
    filled(tmp_path, 3)
    (tmp_path / seg(1)).unlink()
    (tmp_path / seg(1)).mkdir()
    (tmp_path / seg(2)).unlink()
    os.mkfifo(tmp_path / seg(2))
    (tmp_path / "quarantine").write_text("not a directory\n")
    data = bytearray((tmp_path / seg(0)).read_bytes())
    data[HEADER.size + 5] ^= 0xFF  # and a corrupt record, which needs quarantine/
    (tmp_path / seg(0)).write_bytes(bytes(data))
    filled_more = new_spool(tmp_path)  # adopted: segments 1 and 2 are moved aside, lost
    filled_more.append(make_batch(40))
    filled_more.close()

    counters = Counters()
    result: list[list[int]] = []
    with capture_logs() as logs:
        opener = threading.Thread(
            target=lambda: result.append(drained(new_spool(tmp_path, counters)))
        )
        opener.start()
        opener.join(timeout=10)
        assert not opener.is_alive(), "the spool blocked on a FIFO"
    assert result == [[40]]
    assert (tmp_path / "quarantine").is_dir()
    moved = {p.name for p in (tmp_path / "quarantine").iterdir()}
    assert {seg(1), seg(2), "0000000000-000000000000.bin"} <= moved
    assert (tmp_path / "quarantine.1").read_text() == "not a directory\n"
    assert counters.spool_corrupt == 1
    assert counters.spool_lost == 0  # this open found nothing new: the first one counted them
    assert all(e["event"] != "spool_quarantine_failed" for e in logs)


def test_a_fifo_found_at_open_is_counted_lost_once(tmp_path: Path) -> None:
    filled(tmp_path, 2)
    (tmp_path / seg(1)).unlink()
    os.mkfifo(tmp_path / seg(1))
    counters = Counters()
    with capture_logs() as logs:
        assert drained(new_spool(tmp_path, counters)) == [0]
    assert [e["reason"] for e in named(logs, "spool_lost")] == ["a fifo"]
    assert named(logs, "spool_entry_moved")[0]["entry"].endswith(seg(1))
    assert counters.spool_lost == 1


def test_a_big_zero_filled_segment_is_skipped_in_bounded_memory(tmp_path: Path) -> None:
    size = 256 << 20
    with (tmp_path / seg(0)).open("wb") as fh:
        fh.truncate(size)  # sparse: no disk used, 256 MiB of zeros to read
    filled_after = tmp_path / "after"
    filled(filled_after, 1)
    (filled_after / seg(0)).rename(tmp_path / seg(1))
    counters = Counters()
    tracemalloc.start()
    try:
        spool = new_spool(tmp_path, counters)
        assert spool.pending_bytes == size + RECORD
        assert drained(spool) == [0]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak} bytes"
    assert counters.spool_corrupt == 1
    (copy,) = (tmp_path / "quarantine").iterdir()
    assert copy.stat().st_size == COPY_MAX


def test_segments_that_vanish_or_shrink_during_replay_are_reported(tmp_path: Path) -> None:
    filled(tmp_path, 4)
    counters = Counters()
    spool = new_spool(tmp_path, counters)
    (tmp_path / seg(1)).unlink()
    os.truncate(tmp_path / seg(2), RECORD // 2)
    with capture_logs() as logs:
        assert drained(spool) == [0, 12]
    reasons = [(e["segment"], e["reason"], e.get("readings")) for e in named(logs, "spool_lost")]
    assert reasons == [(seg(1), "segment deleted", 4), (seg(2), "segment truncated", 4)]
    assert counters.spool_lost == 2
    assert counters.spool_corrupt == 1  # the half record left in segment 2


def test_a_segment_deleted_while_written_fails_the_append_then_recovers(tmp_path: Path) -> None:
    spool = new_spool(tmp_path, segment_bytes=10 * RECORD)
    spool.append(make_batch(0))
    (tmp_path / "0000000000.open").unlink()
    with capture_logs() as logs, pytest.raises(OSError, match="deleted"):
        spool.append(make_batch(4))
    assert named(logs, "spool_lost")[0]["readings"] == 4
    spool.append(make_batch(8))  # a new segment
    assert drained(spool) == [8]


def test_the_spool_directory_deleted_mid_run_is_made_again(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    spool = new_spool(directory)
    spool.append(make_batch(0))
    for p in directory.iterdir():
        p.unlink()
    directory.rmdir()
    spool.append(make_batch(4))  # segment 0 was sealed (one batch each): a new one, a new dir
    assert drained(spool) == [4]
    assert spool.pending_bytes == 0


def test_the_cap_refuses_a_batch_but_an_empty_spool_takes_one(tmp_path: Path) -> None:
    spool = new_spool(tmp_path, max_bytes=RECORD // 2, segment_bytes=1 << 20)
    spool.append(make_batch(0))  # over the cap on its own: an empty spool takes it
    with pytest.raises(SpoolFull) as raised:
        spool.append(make_batch(4))
    assert raised.value.errno == errno.ENOSPC
    spool.append_payload(encode_batch(make_batch(8)), over_cap=True)  # a forced exit
    assert drained(spool) == [0, 8]
    spool.append(make_batch(12))  # drained: room again
    assert drained(spool) == [12]


def test_the_automatic_cap_is_a_quarter_of_the_free_space_at_most_1_gib(tmp_path: Path) -> None:
    spool = new_spool(tmp_path)
    vfs = os.statvfs(tmp_path)
    assert spool.cap == min(1 << 30, vfs.f_bavail * vfs.f_frsize // 4)
    assert new_spool(tmp_path / "b", max_bytes=12345).cap == 12345


def test_a_cursor_that_cannot_be_written_is_logged_once_and_never_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    filled(tmp_path, 3)

    def full(self: CursorFile, position: Position) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(CursorFile, "store", full)
    with capture_logs() as logs:
        assert drained(new_spool(tmp_path)) == [0, 4, 8]
    assert len(named(logs, "spool_cursor_write_failed")) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # finished segments still deleted


def test_an_unusable_directory_does_not_make_open_raise(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with capture_logs() as logs:
        spool = new_spool(blocker / "spool")
    assert named(logs, "spool_write_failed")
    assert spool.peek() is None
    with pytest.raises(OSError):
        spool.append(make_batch(0))


def test_a_copy_is_replayed_but_marked_uncounted(tmp_path: Path) -> None:
    spool = new_spool(tmp_path)
    spool.append_payload(encode_batch(make_batch(0), copy=True))
    spool.append(make_batch(4))
    first = spool.peek()
    assert first is not None and not first.counted
    spool.ack(first)
    second = spool.peek()
    assert second is not None and second.counted
