"""Faults in the spool, driven against the daemon as a process: its disk full (a 2 MiB tmpfs),
its segments deleted, emptied, replaced by a directory or a FIFO, a file named `quarantine`, a
256 MiB zero-filled segment, and two sinks spooling at a forced shutdown. Each time the daemon
starts, says what it found (a log line, a counter), keeps the counters reconciled and exits 0."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.resilience.segments import SEGMENT_NAME
from tests.e2e.daemonproc import (
    DaemonProcess,
    Event,
    read_rows,
    readings,
    reconciles,
    write_config,
)

pytestmark = pytest.mark.e2e

FAST = {"retry": {"attempts": 2, "base_delay_s": 0.01}}


@pytest.fixture
def small_disk(tmp_path: Path, daemons: list[DaemonProcess]) -> Iterator[Path]:
    """A 2 MiB tmpfs; unmounted at teardown, after every daemon using it was killed."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs the fault suite as root: the full-disk test must not be skipped")
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        for d in daemons:
            d.kill()
        subprocess.run(["umount", str(mount)], check=True)


def fill(disk: Path, leave: int = 0) -> Path:
    """Fill `disk` up, then give back `leave` bytes; the filler file is returned."""
    filler = disk / "filler"
    chunk = b"\xff" * (64 << 10)
    with filler.open("wb", buffering=0) as fh:
        try:
            while True:
                fh.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def start(cfg: Path, daemons: list[DaemonProcess]) -> DaemonProcess:
    d = DaemonProcess(cfg, cwd=cfg.parent)  # data/state lands in the test's directory
    daemons.append(d)
    return d


def named(d: DaemonProcess, event: str) -> list[Event]:
    return [e for e in d.events if e.get("event") == event]


def after(d: DaemonProcess, seen: int, predicate: Callable[[Event], bool], timeout: float) -> Event:
    """The first event past the first `seen` ones that satisfies `predicate`."""
    return d.wait_for(lambda e: any(e is x for x in d.events[seen:]) and predicate(e), timeout)


def health(e: Event) -> bool:
    return e.get("event") == "pipeline_health"


def read_of(e: Event) -> int:
    counters: dict[str, Any] = e["counters"]
    return int(counters["read"])


def paused(d: DaemonProcess, seen: int, timeout: float = 6.0) -> int:
    """Wait for two health reports in a row with the same `read` (the sources wait); its value."""
    previous: list[int] = []

    def flat(e: Event) -> bool:
        if not health(e):
            return False
        previous.append(read_of(e))
        return len(previous) >= 2 and previous[-1] == previous[-2]

    return read_of(after(d, seen, flat, timeout))


def segments(spool: Path) -> list[Path]:
    return sorted(p for p in spool.iterdir() if SEGMENT_NAME.match(p.name))


def spool_everything(
    tmp: Path, spool: Path, daemons: list[DaemonProcess], per_sensor: int = 200, **kw: Any
) -> Any:
    """A bounded run into a sink that cannot open: every reading goes to `spool`."""
    blocker = tmp / "blocker"
    blocker.write_text("a file where the sink wants a directory\n")
    cfg = write_config(
        tmp,
        sensors=5,
        rate_hz=1000,
        max_readings=per_sensor,
        sink_path=blocker / "out.jsonl",
        spool_dir=spool,
        sink=FAST | kw,
    )
    d = start(cfg, daemons)
    assert d.finish(timeout=30) == 0, d.stderr
    c = d.counters()
    assert c["spooled"] > 0 and c["written"] == 0
    blocker.unlink()
    return c


def test_a_full_spool_disk_pauses_the_sources_and_a_restart_never_fails(
    tmp_path: Path, daemons: list[DaemonProcess], small_disk: Path
) -> None:
    spool = small_disk / "spool"
    (tmp_path / "earlier").mkdir()
    earlier = spool_everything(tmp_path / "earlier", spool, daemons)
    (spool / "cursor").unlink(missing_ok=True)  # to be created again on a full disk
    fill(small_disk)

    blocker = tmp_path / "blocker"
    blocker.write_text("the sink cannot open until this file goes\n")
    out = blocker / "out.jsonl"
    cfg = write_config(
        tmp_path,
        sensors=10,
        rate_hz=500,
        max_readings=0,
        sink_path=out,
        spool_dir=spool,
        health_interval_s=0.25,
        sink=FAST | {"spool_max_bytes": 64 << 20},
    )
    d = start(cfg, daemons)
    full = d.wait_event("spool_full", timeout=8)
    assert "No space left" in full["error"]
    stalled = paused(d, d.events.index(full))
    blocker.unlink()  # the sink can work now: the wait ends by itself
    seen = len(d.events)
    recovered = after(d, seen, lambda e: e.get("event") == "spool_recovered", 8)
    assert recovered["taken_by"] == "sink"
    after(d, seen, lambda e: health(e) and read_of(e) > stalled, 5)  # the sources run again
    d.signal(signal.SIGTERM)
    assert d.finish(timeout=15) == 0, d.stderr
    c = d.counters()
    assert reconciles(c), c
    assert c["replayed"] == earlier["spooled"]  # the earlier run's spool, replayed on a full disk
    assert c["written"] == len(readings(read_rows(out))) > c["replayed"]
    assert c["abandoned"] == 0

    fill(small_disk)  # the replay gave space back: take it again
    again = start(cfg, daemons)  # a restart on a full disk with a healthy sink
    again.wait_for(lambda e: health(e) and e["counters"]["written"] > 0, timeout=8)
    again.signal(signal.SIGTERM)
    assert again.finish(timeout=15) == 0, again.stderr
    assert reconciles(again.counters())


def test_a_full_spool_disk_recovers_by_itself_when_space_returns(
    tmp_path: Path, daemons: list[DaemonProcess], small_disk: Path
) -> None:
    filler = fill(small_disk, leave=16 << 10)
    blocker = tmp_path / "blocker"
    blocker.write_text("x\n")
    cfg = write_config(
        tmp_path,
        sensors=10,
        rate_hz=500,
        max_readings=0,
        sink_path=blocker / "out.jsonl",
        spool_dir=small_disk / "spool",
        health_interval_s=0.25,
        sink=FAST | {"spool_max_bytes": 64 << 20},
    )
    d = start(cfg, daemons)
    full = d.wait_event("spool_full", timeout=8)
    stalled = paused(d, d.events.index(full))
    filler.unlink()
    seen = len(d.events)
    recovered = after(d, seen, lambda e: e.get("event") == "spool_recovered", 8)
    assert recovered["taken_by"] == "spool"
    after(d, seen, lambda e: health(e) and read_of(e) > stalled, 5)
    d.signal(signal.SIGTERM)
    assert d.finish(timeout=15) == 0, d.stderr
    c = d.counters()
    assert reconciles(c), c
    assert c["spooled"] > 0 and c["written"] == 0


def test_segments_deleted_emptied_or_replaced_are_reported_and_never_stop_it(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    spool = tmp_path / "spool"
    (tmp_path / "earlier").mkdir()
    spool_everything(tmp_path / "earlier", spool, daemons, 800, spool_segment_bytes=4096)
    segs = segments(spool)
    assert len(segs) >= 8
    segs[1].unlink()  # deleted
    os.truncate(segs[3], 0)  # truncated to zero
    segs[5].unlink()
    segs[5].mkdir()  # a directory named like a segment
    segs[7].unlink()
    os.mkfifo(segs[7])  # a FIFO: opening it for reading would block
    (spool / "quarantine").write_text("a file where the quarantine directory goes\n")

    out = tmp_path / "out.jsonl"
    cfg = write_config(
        tmp_path,
        sensors=5,
        rate_hz=500,
        max_readings=0,
        sink_path=out,
        spool_dir=spool,
        id_prefix="T",
        sink=FAST | {"spool_segment_bytes": 4096},
    )
    d = start(cfg, daemons)
    d.wait_event("spool_replayed", timeout=8)
    d.signal(signal.SIGTERM)
    assert d.finish(timeout=15) == 0, d.stderr
    c = d.counters()
    assert reconciles(c), c
    assert c["spool_lost"] == 4
    reasons = sorted(e["reason"] for e in named(d, "spool_lost"))
    assert reasons == ["a directory", "a fifo", "empty segment", "segment missing"]
    moved = {Path(e["entry"]).name for e in named(d, "spool_entry_moved")}
    assert {"quarantine", segs[5].name, segs[7].name} <= moved
    replayed = [r for r in readings(read_rows(out)) if r["sensor_id"].startswith("S")]
    assert len(replayed) == c["replayed"] > 0
    assert len({(r["sensor_id"], r["seq"]) for r in replayed}) == len(replayed)


def test_a_256_mib_zero_filled_segment_is_skipped_in_bounded_memory(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    spool = tmp_path / "spool"
    (tmp_path / "earlier").mkdir()
    earlier = spool_everything(tmp_path / "earlier", spool, daemons)
    last = int(SEGMENT_NAME.match(segments(spool)[-1].name).group(1))  # type: ignore[union-attr]
    with (spool / f"{last + 1:010d}.seg").open("wb") as fh:
        fh.truncate(256 << 20)  # sparse: no disk, 256 MiB of zeros to read
    out = tmp_path / "out.jsonl"
    cfg = write_config(
        tmp_path,
        sensors=5,
        rate_hz=500,
        max_readings=0,
        sink_path=out,
        spool_dir=spool,
        id_prefix="T",
        sink=FAST,
    )
    d = start(cfg, daemons)
    corrupt = d.wait_event("spool_record_corrupt", timeout=8)
    assert corrupt["bytes"] == 256 << 20
    d.wait_for(lambda e: health(e) and e["counters"]["written"] > earlier["spooled"], timeout=8)
    d.signal(signal.SIGTERM)
    assert d.finish(timeout=15) == 0, d.stderr
    c = d.counters()
    assert reconciles(c), c
    assert (c["replayed"], c["spool_corrupt"]) == (earlier["spooled"], 1)
    (done,) = named(d, "shutdown_complete")
    assert done["peak_rss_mb"] < 150, done["peak_rss_mb"]
    (copy,) = (spool / "quarantine").iterdir()
    assert copy.stat().st_size == 1 << 20  # the first MiB, not 256


def test_two_sinks_forced_to_spool_then_replayed_count_each_reading_once(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("both sinks fail until this goes\n")

    def config(where: Path, **kw: Any) -> Path:
        second = {
            "type": "jsonl",
            "path": str(where / "b" / "out.jsonl"),
            "spool_dir": str(tmp_path / "spool-b"),
        } | FAST
        return write_config(
            tmp_path,
            sink_path=where / "a" / "out.jsonl",
            spool_dir=tmp_path / "spool-a",
            sink=FAST,
            more_sinks=[second],
            **kw,
        )

    first = start(config(blocker, sensors=20, rate_hz=2000, max_readings=0), daemons)
    first.wait_for(lambda e: health(e) and e["counters"]["spooled"] > 5000, timeout=8)
    first.signal(signal.SIGTERM)
    first.wait_event("shutdown_started")  # two signals sent at once may arrive as one
    first.signal(signal.SIGTERM)  # forced: what is in flight goes to both spools at once
    assert first.finish(timeout=15) == 0, first.stderr
    c1 = first.counters()
    assert reconciles(c1), c1
    assert named(first, "shutdown_forced")

    blocker.unlink()
    good = tmp_path / "good"
    second = start(config(good, sensors=2, rate_hz=1000, max_readings=50, id_prefix="T"), daemons)
    assert second.finish(timeout=30) == 0, second.stderr
    c2 = second.counters()
    assert reconciles(c2), c2
    assert c2["replayed"] == c1["spooled"]  # once, though two spools replayed it
    for sink in ("a", "b"):
        rows = readings(read_rows(good / sink / "out.jsonl"))
        from_spool = {(r["sensor_id"], r["seq"]) for r in rows if r["sensor_id"].startswith("S")}
        assert len(from_spool) == c1["spooled"], sink
        assert c2["written"] == len(rows)
    copies = [e for e in named(second, "spool_replayed") if e["copies"]]
    assert sum(e["copies"] for e in copies) == c1["spooled"]
