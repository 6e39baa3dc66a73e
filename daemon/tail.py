"""`ingestd tail`: the JSON log as a readable, coloured, one-line-per-event view.

    12:04:05.123 INFO  daemon pipeline_health written_per_s=98123.4 breakers={"sinks[0]":"closed"}

Reads a file (or standard input), filters by level, event name and time, and with `-f` keeps
following the file across logrotate's rename + create the way `tail -F` does: when the name
points at a new inode the old file is drained until the writer has moved to the new one (the new
file has data), so the lines written between the rename and the daemon's reopen are shown too.
A line that is not a JSON object is shown behind a `??` marker instead of ending the view; an
`exception` field is shown below its line, indented, because a traceback is unreadable inline.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import sys
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TextIO

import orjson

LEVEL_RANK = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "critical": 50}
_SHORT = {"debug": "DEBUG", "info": "INFO", "warning": "WARN", "error": "ERROR", "critical": "CRIT"}
_COLOURS = {"debug": "2", "info": "32", "warning": "33", "error": "31", "critical": "1;31"}
_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_FIXED = ("timestamp", "level", "logger", "event", "exception")
_PLAIN = re.compile(r"[^\s\"=]+")
POLL_S = 0.2


def add_tail_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", help="JSON log file (default: standard input)")
    parser.add_argument(
        "-f", "--follow", action="store_true", help="keep reading; survives log rotation"
    )
    parser.add_argument(
        "-n", "--lines", type=int, default=None, metavar="N", help="start with the last N events"
    )
    parser.add_argument(
        "--level",
        type=str.lower,
        choices=[k for k in LEVEL_RANK if k != "warn"],
        default="debug",
        help="minimum level shown",
    )
    parser.add_argument(
        "--event", action="append", default=[], metavar="E", help="only this event (repeatable)"
    )
    parser.add_argument(
        "--since",
        type=parse_since,
        default=None,
        metavar="T",
        help="only events at or after T: ISO-8601 time or relative like 10m, 2h, 1d, 1h30m",
    )
    parser.add_argument(
        "--json", action="store_true", help="print matching lines unchanged (JSON lines)"
    )


def parse_since(text: str) -> dt.datetime:
    """An aware UTC datetime from `2026-01-02T03:04:05Z`-like text or `10m`-like durations."""
    if (matches := list(_RELATIVE.finditer(text))) and "".join(m.group(0) for m in matches) == text:
        seconds = sum(float(m.group(1)) * _UNIT_S[m.group(2)] for m in matches)
        return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither an ISO-8601 time nor a duration like 10m"
        ) from None
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


@dataclass(frozen=True)
class Selection:
    """Which events to show; decided once from the arguments."""

    min_rank: int = 0
    events: frozenset[str] = frozenset()
    since: dt.datetime | None = None

    def matches(self, obj: dict[str, Any]) -> bool:
        if LEVEL_RANK.get(str(obj.get("level", "info")).lower(), 20) < self.min_rank:
            return False
        if self.events and obj.get("event") not in self.events:
            return False
        if self.since is not None:
            try:
                when = dt.datetime.fromisoformat(str(obj.get("timestamp")))
            except ValueError:
                return False
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.UTC)
            return when >= self.since
        return True


class Formatter:
    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def _c(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour else text

    def event(self, obj: dict[str, Any]) -> str:
        ts = str(obj.get("timestamp", ""))
        clock = ts[11:23] if len(ts) >= 23 and ts[10] == "T" else ts or "-"
        level = str(obj.get("level", "")).lower()
        parts = [
            self._c("2", clock),
            self._c(_COLOURS.get(level, "0"), f"{_SHORT.get(level, level.upper()[:5]):<5}"),
            self._c("34", str(obj.get("logger", "-"))),
            self._c("1", str(obj.get("event", ""))),
        ]
        parts += [f"{self._c('36', k)}={_value(v)}" for k, v in obj.items() if k not in _FIXED]
        line = " ".join(parts)
        exc = obj.get("exception")
        if exc:
            line += "\n" + "\n".join("    " + self._c("31", t) for t in str(exc).splitlines())
        return line

    def unparsed(self, line: str) -> str:
        return f"{self._c('1;35', '??')} {line}"


def _value(v: Any) -> str:
    if isinstance(v, str):
        return v if _PLAIN.fullmatch(v) else orjson.dumps(v).decode()
    return orjson.dumps(v, default=str).decode()


def run_tail(
    args: argparse.Namespace,
    *,
    out: TextIO | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Print the selected events; returns the exit status. `stop` ends a follow (tests)."""
    out = out if out is not None else sys.stdout
    selection = Selection(
        min_rank=LEVEL_RANK[args.level], events=frozenset(args.event), since=args.since
    )
    colour = out.isatty() and not os.environ.get("NO_COLOR")
    fmt = Formatter(colour)
    try:
        for i, chunk in enumerate(_chunks(args, stop or threading.Event())):
            first_n = i == 0 and args.lines is not None
            _emit(
                _last(chunk, args.lines, selection) if first_n else chunk,
                selection,
                fmt,
                out,
                as_json=args.json,
            )
            out.flush()
    except FileNotFoundError as exc:
        print(f"ingestd tail: {exc.filename}: no such file", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # `ingestd tail | head`: the reader left, which is fine
        if out is sys.stdout:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0


def _chunks(args: argparse.Namespace, stop: threading.Event) -> Iterator[list[bytes]]:
    if args.file is None:
        yield from _read_stream(sys.stdin.buffer, live=args.follow)
    elif args.follow:
        yield from follow(Path(args.file), stop)
    else:
        with Path(args.file).open("rb") as fh:
            yield from _read_stream(fh, live=False)


def _emit(
    lines: list[bytes], selection: Selection, fmt: Formatter, out: TextIO, *, as_json: bool
) -> None:
    for raw in lines:
        obj = _parse(raw)
        if obj is None:
            if raw.strip():
                text = raw.decode("utf-8", "replace")
                print(fmt.unparsed(text), file=sys.stderr if as_json else out)
        elif selection.matches(obj):
            out.write(raw.decode("utf-8", "replace") if as_json else fmt.event(obj))
            out.write("\n")


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def _last(lines: list[bytes], n: int, selection: Selection) -> list[bytes]:
    """The last `n` matching events of the initial read (unparsed lines are not counted)."""
    kept: deque[bytes] = deque(maxlen=max(n, 0))
    for raw in lines:
        obj = _parse(raw)
        if obj is not None and selection.matches(obj):
            kept.append(raw)
    return list(kept)


def _read_stream(stream: IO[bytes], *, live: bool) -> Iterator[list[bytes]]:
    """Lines until EOF: at once, or (`live`, a pipe being written) as they arrive."""
    with stream:
        if not live:
            yield stream.read().splitlines()
            return
        partial = b""
        while data := _read_available(stream):
            lines = (partial + data).split(b"\n")
            partial = lines.pop()
            yield lines
        if partial:
            yield [partial]


def _read_available(stream: IO[bytes]) -> bytes:
    read1 = getattr(stream, "read1", None)
    return bytes(read1(65536)) if read1 is not None else stream.read(65536)


def follow(path: Path, stop: threading.Event, poll_s: float = POLL_S) -> Iterator[list[bytes]]:
    """Chunks of complete lines from `path`, forever (until `stop`), like `tail -F`."""
    current = _wait_open(path, stop, poll_s)
    pending: IO[bytes] | None = None  # the file now at `path`, after a rotation
    partial = b""
    try:
        while current is not None:
            data = current.read()
            if data:
                lines = (partial + data).split(b"\n")
                partial = lines.pop()
                if lines:
                    yield lines
                continue
            if pending is not None and os.fstat(pending.fileno()).st_size > 0:
                # The writer has moved on: the old file is complete. Switch for good.
                if partial:
                    yield [partial]
                current.close()
                current, pending, partial = pending, None, b""
                continue
            if pending is None:
                pending = _rotated(path, current)
                if pending is not None:
                    continue
                if os.fstat(current.fileno()).st_size < current.tell():  # truncated in place
                    current.seek(0)
                    partial = b""
                    continue
            if stop.wait(poll_s):
                return
    finally:
        for fh in (current, pending):
            if fh is not None:
                fh.close()


def _wait_open(path: Path, stop: threading.Event, poll_s: float) -> IO[bytes] | None:
    while True:
        try:
            return path.open("rb")
        except FileNotFoundError:
            if stop.wait(poll_s):
                return None


def _rotated(path: Path, current: IO[bytes]) -> IO[bytes] | None:
    """The file now named `path` if it is not the one we hold, else None."""
    try:
        named = path.stat()
        held = os.fstat(current.fileno())
        if (named.st_ino, named.st_dev) == (held.st_ino, held.st_dev):
            return None
        return path.open("rb")
    except FileNotFoundError:
        return None  # renamed, not yet re-created
