"""`ingestd top [--url URL]`: a live dashboard of a running daemon, from its `/status`.

It polls once a second (`--interval`), computes rates from successive polls and keeps a minute
of rate history for the sparklines. On a terminal it draws a full-screen rich dashboard and
quits on `q` or Ctrl-C; when stdout is not a terminal (a pipe, a file, `--plain`) it prints one
block of plain lines per poll. An unreachable daemon is one line on stderr and exit 69 at start;
a terminal dashboard that loses the daemon later says so on screen and keeps trying, plain
output ends with the same message and exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

from rich.console import Console
from rich.live import Live

from daemon.tools.client import (
    DEFAULT_URL,
    EX_UNAVAILABLE,
    DaemonUnreachable,
    fetch_status,
    url_argument,
)
from daemon.tools.keys import KeyReader
from daemon.tools.rates import RateTracker
from daemon.tools.topview import dashboard, plain_lines

QUIT_KEYS = frozenset("qQ")


def add_top_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", type=url_argument, default=DEFAULT_URL, help=f"the daemon's HTTP ({DEFAULT_URL})"
    )
    parser.add_argument("--interval", type=_positive, default=1.0, help="seconds between polls (1)")
    parser.add_argument(
        "--count", type=int, default=0, help="stop after this many polls (0: never)"
    )
    parser.add_argument("--plain", action="store_true", help="plain lines even on a terminal")


def run_top(args: argparse.Namespace) -> int:
    try:
        first = fetch_status(args.url)
    except DaemonUnreachable as exc:
        print(f"ingestd top: {exc}", file=sys.stderr)
        return EX_UNAVAILABLE
    try:
        if args.plain or not sys.stdout.isatty():
            return _plain(args.url, first, args.interval, args.count)
        return _live(args.url, first, args.interval, args.count)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # `ingestd top | head`: the reader left, which is fine
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _plain(url: str, status: dict[str, object], interval: float, count: int) -> int:
    tracker = RateTracker()
    polls = 0
    next_at = time.monotonic()
    while True:
        print("\n".join(plain_lines(tracker.update(dict(status)))), flush=True)
        polls += 1
        if count and polls >= count:
            return 0
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))
        try:
            status = fetch_status(url)
        except DaemonUnreachable as exc:
            print(f"ingestd top: {exc}", file=sys.stderr)
            return EX_UNAVAILABLE


def _live(url: str, status: dict[str, object], interval: float, count: int) -> int:
    tracker = RateTracker()
    frame = tracker.update(dict(status))
    polls = 1
    console = Console()
    with (
        KeyReader() as keys,
        Live(dashboard(frame, url), console=console, screen=True, auto_refresh=False) as live,
    ):
        next_at = time.monotonic()
        while not (count and polls >= count):
            next_at += interval
            while (left := next_at - time.monotonic()) > 0:
                pressed = keys.wait(left)
                if pressed and QUIT_KEYS.intersection(pressed):
                    return 0
            try:
                frame = tracker.update(fetch_status(url))
                live.update(dashboard(frame, url), refresh=True)
            except DaemonUnreachable as exc:
                live.update(
                    dashboard(frame, url, f"lost the daemon: {exc}; retrying"), refresh=True
                )
            polls += 1
    return 0
