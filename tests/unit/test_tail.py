"""`ingestd tail`: formatting, filters, the non-JSON marker, stdin, colour, and -f across a
rename rotation with real files."""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from daemon.tail import Formatter, add_tail_arguments, parse_since, run_tail

ROOT = Path(__file__).resolve().parents[2]
RUN_TAIL = (
    "import argparse, sys\n"
    "from daemon.tail import add_tail_arguments, run_tail\n"
    "p = argparse.ArgumentParser(prog='ingestd tail')\n"
    "add_tail_arguments(p)\n"
    "sys.exit(run_tail(p.parse_args()))\n"
)


def event(ts: str, level: str, name: str, **fields: object) -> str:
    obj = {"timestamp": ts, "level": level, "logger": "daemon", "event": name, **fields}
    return json.dumps(obj)


LINES = [
    event("2026-11-21T10:00:00.123456Z", "debug", "tick", n=1),
    event("2026-11-21T10:00:01.000000Z", "info", "daemon_started", sources=1),
    "not json at all",
    event("2026-11-21T10:00:02.500000Z", "warning", "sensor_down", sensor_id="S0007"),
    event("2026-11-21T10:00:03.000000Z", "error", "breaker_state_changed", to="open"),
    "[1, 2]",
    "",
]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_tail_arguments(parser)
    return parser.parse_args(list(argv))


def tail(tmp_path: Path, *argv: str) -> list[str]:
    log = tmp_path / "ingestd.log"
    log.write_text("\n".join(LINES) + "\n")
    out = io.StringIO()
    assert run_tail(parse(str(log), *argv), out=out) == 0
    return out.getvalue().splitlines()


def test_formatting_is_one_readable_line_per_event() -> None:
    fmt = Formatter(colour=False)
    line = fmt.event(
        {
            "timestamp": "2026-11-21T22:48:23.123456Z",
            "level": "warning",
            "logger": "sources[0]",
            "event": "sensor_down",
            "sensor_id": "S0007",
            "reason": "no good read for 30 s",
            "counters": {"read": 5},
            "ok": True,
        }
    )
    assert line == (
        "22:48:23.123 WARN  sources[0] sensor_down sensor_id=S0007 "
        'reason="no good read for 30 s" counters={"read":5} ok=true'
    )


def test_an_exception_follows_its_line_indented() -> None:
    text = Formatter(colour=False).event(
        {"level": "error", "event": "pipeline_failed", "exception": "Traceback\n  boom"}
    )
    assert text.splitlines() == ["- ERROR - pipeline_failed", "    Traceback", "      boom"]


def test_colour_codes_only_when_asked() -> None:
    obj = {"timestamp": "2026-11-21T22:48:23.123456Z", "level": "error", "event": "x"}
    assert "\x1b[31m" in Formatter(colour=True).event(obj)
    assert "\x1b[" not in Formatter(colour=False).event(obj)


def test_the_whole_file_with_a_marker_for_non_json_lines(tmp_path: Path) -> None:
    assert tail(tmp_path) == [
        "10:00:00.123 DEBUG daemon tick n=1",
        "10:00:01.000 INFO  daemon daemon_started sources=1",
        "?? not json at all",
        "10:00:02.500 WARN  daemon sensor_down sensor_id=S0007",
        "10:00:03.000 ERROR daemon breaker_state_changed to=open",
        "?? [1, 2]",
    ]


def test_level_is_a_minimum(tmp_path: Path) -> None:
    shown = [x for x in tail(tmp_path, "--level", "WARNING") if not x.startswith("??")]
    assert [x.split()[3] for x in shown] == ["sensor_down", "breaker_state_changed"]


def test_event_is_exact_and_repeatable(tmp_path: Path) -> None:
    shown = tail(tmp_path, "--event", "sensor_down", "--event", "tick", "--event", "sensor")
    assert [x.split()[3] for x in shown if not x.startswith("??")] == ["tick", "sensor_down"]


def test_since_an_iso_time(tmp_path: Path) -> None:
    shown = tail(tmp_path, "--since", "2026-11-21T10:00:02.5Z")
    assert [x.split()[3] for x in shown if not x.startswith("??")] == [
        "sensor_down",
        "breaker_state_changed",
    ]
    # An offset is honoured; a naive time is taken as UTC.
    assert parse_since("2026-11-21T11:00:02+01:00") == parse_since("2026-11-21T10:00:02")


def test_since_a_relative_time(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    assert abs((now - parse_since("1h30m")).total_seconds() - 5400) < 5
    assert abs((now - parse_since("2d")).total_seconds() - 172800) < 5
    recent = (now - dt.timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    log = tmp_path / "recent.log"
    log.write_text(LINES[1] + "\n" + event(recent, "info", "fresh") + "\n")
    out = io.StringIO()
    run_tail(parse(str(log), "--since", "10m"), out=out)
    assert [x.split()[3] for x in out.getvalue().splitlines()] == ["fresh"]


def test_since_rejects_nonsense() -> None:
    with pytest.raises(SystemExit):
        parse("--since", "yesterday-ish")


def test_json_passes_matching_lines_through_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = tail(tmp_path, "--json", "--level", "warning")
    assert shown == [LINES[3], LINES[4]]
    assert capsys.readouterr().err.splitlines() == ["?? not json at all", "?? [1, 2]"]


def test_lines_starts_with_the_last_n_events(tmp_path: Path) -> None:
    shown = tail(tmp_path, "-n", "2")
    assert [x.split()[3] for x in shown] == ["sensor_down", "breaker_state_changed"]


def test_a_missing_file_is_exit_1(tmp_path: Path) -> None:
    assert run_tail(parse(str(tmp_path / "absent.log")), out=io.StringIO()) == 1


def test_standard_input_when_no_file_is_given() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", RUN_TAIL, "--event", "sensor_down"],
        input="\n".join(LINES) + "\n",
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "?? not json at all",
        "10:00:02.500 WARN  daemon sensor_down sensor_id=S0007",
        "?? [1, 2]",
    ]  # not a TTY: no colour


@pytest.mark.parametrize(("no_color", "coloured"), [("", True), ("1", False)])
def test_colour_on_a_terminal_unless_no_color(
    tmp_path: Path, no_color: str, coloured: bool
) -> None:
    log = tmp_path / "ingestd.log"
    log.write_text(LINES[1] + "\n")
    env = {**os.environ, "NO_COLOR": no_color}
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", RUN_TAIL, str(log)],
            stdout=terminal,
            env=env,
            cwd=ROOT,
            timeout=30,
            check=True,
        )
        assert proc.returncode == 0
        output = os.read(controller, 4096).decode()
    finally:
        os.close(controller)
        os.close(terminal)
    assert "daemon_started" in output
    assert ("\x1b[" in output) is coloured


class Collector(io.StringIO):
    """An output stream the test can wait on: no sleeps standing in for synchronization."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()

    def write(self, s: str) -> int:
        with self.changed:
            n = super().write(s)
            self.changed.notify_all()
            return n

    def wait_for(self, events: list[str], timeout: float = 5.0) -> None:
        with self.changed:
            ok = self.changed.wait_for(lambda: self.events() == events, timeout)
        assert ok, f"wanted {events}, got {self.events()}"

    def events(self) -> list[str]:
        return [x.split()[3] for x in self.getvalue().splitlines() if not x.startswith("??")]


def append(path: Path, *names: str) -> None:
    with path.open("a") as fh:
        for name in names:
            fh.write(event("2026-11-21T10:00:00.000000Z", "info", name) + "\n")


def test_follow_survives_rename_rotation_and_truncation(tmp_path: Path) -> None:
    log = tmp_path / "ingestd.log"
    append(log, "e1")
    out, stop = Collector(), threading.Event()
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(run_tail(parse(str(log), "-f"), out=out, stop=stop))
    )
    thread.start()
    try:
        out.wait_for(["e1"])
        append(log, "e2")
        with log.open("a") as fh:  # a line written in two parts is shown once, whole
            fh.write(event("2026-11-21T10:00:00.000000Z", "info", "e3")[:20])
            fh.flush()
            fh.write(event("2026-11-21T10:00:00.000000Z", "info", "e3")[20:] + "\n")
        out.wait_for(["e1", "e2", "e3"])

        # logrotate: rename, then the daemon still writes to the old file until it reopens.
        with log.open("a") as still_open:
            log.rename(tmp_path / "ingestd.log.1")
            still_open.write(event("2026-11-21T10:00:00.000000Z", "info", "e4") + "\n")
            still_open.flush()
            out.wait_for(["e1", "e2", "e3", "e4"])
            log.touch()  # create: an empty new file
            still_open.write(event("2026-11-21T10:00:00.000000Z", "info", "e5") + "\n")
        append(log, "e6", "e7")  # reopened: the new file
        out.wait_for(["e1", "e2", "e3", "e4", "e5", "e6", "e7"])

        log.write_text("")  # truncated in place (copytruncate)
        append(log, "e8")
        out.wait_for(["e1", "e2", "e3", "e4", "e5", "e6", "e7", "e8"])
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert result == [0]


def test_follow_waits_for_a_file_that_does_not_exist_yet(tmp_path: Path) -> None:
    log = tmp_path / "later.log"
    out, stop = Collector(), threading.Event()
    thread = threading.Thread(
        target=run_tail, args=(parse(str(log), "-f"),), kwargs={"out": out, "stop": stop}
    )
    thread.start()
    try:
        append(log, "first")
        out.wait_for(["first"])
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
