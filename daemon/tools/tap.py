"""`ingestd tap [--at stages[2] | --at sinks[0]] [--kind K] [--limit N] [--sample P]`: live records.

It streams the daemon's `/tap` (`daemon/observability/tapstream.py`) and prints each record as
one JSON line on stdout, exactly as the sinks' wire format writes it, so `ingestd tap | jq` and
`grep` work on it. The stream's status lines never reach stdout: when the daemon had to drop
records because this reader fell behind (its buffer is bounded, the pipeline never waits for a
tap), that is said on stderr as it happens, and a summary line ends every run there too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import IO, Any
from urllib.parse import urlencode

from daemon.batch import RECORD_KINDS
from daemon.tools.client import (
    DEFAULT_URL,
    EX_UNAVAILABLE,
    EX_USAGE,
    DaemonUnreachable,
    RequestRefused,
    open_url,
    url_argument,
)

NOTE = b'{"tap":'
READ_TIMEOUT_S = 10.0  # the daemon sends a status line every second, even when idle


def add_tap_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        type=url_argument,
        default=DEFAULT_URL,
        help=f"the daemon's HTTP endpoint ({DEFAULT_URL})",
    )
    parser.add_argument(
        "--at",
        default=None,
        help="where to watch: stages[i] (that stage's output) or sinks[i] (what that sink is "
        "handed); default: the last stage's output",
    )
    parser.add_argument(
        "--kind", choices=RECORD_KINDS, default=None, help="only records of this kind"
    )
    parser.add_argument("--limit", type=int, default=None, help="stop after this many records")
    parser.add_argument(
        "--sample", type=float, default=1.0, help="keep each record with this probability (1)"
    )


def run_tap(args: argparse.Namespace, out: IO[bytes] | None = None) -> int:
    stdout = out if out is not None else sys.stdout.buffer
    try:
        url = args.url + "/tap?" + urlencode(_params(args))
    except ValueError as exc:
        print(f"ingestd tap: {exc}", file=sys.stderr)
        return EX_USAGE
    try:
        resp = open_url(url, READ_TIMEOUT_S)
    except DaemonUnreachable as exc:
        print(f"ingestd tap: {exc}", file=sys.stderr)
        return EX_UNAVAILABLE
    except RequestRefused as exc:
        print(f"ingestd tap: {exc}", file=sys.stderr)
        return EX_USAGE
    reader = _Reader(stdout, args.limit, flush_each=_is_tty(stdout))
    try:
        with resp:
            code = reader.read(resp)
    except KeyboardInterrupt:
        code = 0
    except BrokenPipeError:  # `ingestd tap | head`: the reader left, which is fine
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
        return 0
    except (OSError, ValueError) as exc:  # the daemon went away mid-stream
        print(f"ingestd tap: the stream from {url} broke: {exc}", file=sys.stderr)
        code = EX_UNAVAILABLE
    with contextlib.suppress(OSError):
        stdout.flush()
    print(reader.summary(), file=sys.stderr)
    return code


class _Reader:
    """Records to `out`, status lines to stderr; counts what it printed."""

    def __init__(self, out: IO[bytes], limit: int | None, *, flush_each: bool) -> None:
        self.out = out
        self.limit = limit
        self.flush_each = flush_each
        self.records = 0
        self.note: dict[str, Any] = {}
        self._dropped_told = 0

    def read(self, resp: Any) -> int:
        while line := resp.readline():
            if line.startswith(NOTE):
                self._on_note(json.loads(line)["tap"])
                if self.note.get("done"):
                    return 0
                continue
            self.out.write(line)
            self.records += 1
            if self.flush_each:
                self.out.flush()
            if self.limit is not None and self.records >= self.limit:
                return 0
        if self.note.get("done"):
            return 0
        print("ingestd tap: the daemon ended the stream (it is shutting down?)", file=sys.stderr)
        return EX_UNAVAILABLE

    def _on_note(self, note: dict[str, Any]) -> None:
        self.note = note
        self.out.flush()
        dropped = int(note.get("dropped", 0))
        if dropped > self._dropped_told:
            print(
                f"ingestd tap: {dropped} records dropped so far at {note.get('at')}: this reader "
                "is slower than the stream (--sample keeps a fraction)",
                file=sys.stderr,
            )
            self._dropped_told = dropped

    def summary(self) -> str:
        at = self.note.get("at", "?")
        dropped = int(self.note.get("dropped", 0))
        noun = "record" if self.records == 1 else "records"
        return f"ingestd tap: {self.records} {noun} from {at}, {dropped} dropped"


def _params(args: argparse.Namespace) -> dict[str, str]:
    if args.limit is not None and args.limit < 1:
        raise ValueError("--limit must be >= 1")
    if not 0.0 < args.sample <= 1.0:
        raise ValueError("--sample must be > 0 and <= 1")
    params = {"sample": f"{args.sample:g}"}
    if args.at:
        params["at"] = args.at
    if args.kind:
        params["kind"] = args.kind
    if args.limit is not None:
        params["limit"] = str(args.limit)
    return params


def _is_tty(stream: IO[bytes]) -> bool:
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
