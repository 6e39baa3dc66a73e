"""Reaching a running daemon's HTTP endpoint, and saying plainly why it cannot be reached.

Why a module of its own: `ingestd top` and `ingestd tap` fail the same ways (nothing listens,
the daemon runs with `[daemon.http]` off, the address answers but is not ingestd), and an
operator should get the same one-line diagnosis from both, never a urllib traceback.
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

DEFAULT_URL = "http://127.0.0.1:9108"
EX_USAGE = 64  # sysexits: the request was wrong (no such tap point, a bad parameter)
EX_UNAVAILABLE = 69  # sysexits: the daemon cannot be reached
TIMEOUT_S = 5.0
HINT = "is the daemon running, with [daemon.http] enabled = true on this address?"


class DaemonUnreachable(Exception):
    """The daemon's endpoint did not answer as ingestd does; the message says why."""


class RequestRefused(Exception):
    """The daemon answered with an error status; the message is its reason."""


def base_url(url: str) -> str:
    """`url` with a scheme and without a trailing slash (`127.0.0.1:9108` works too)."""
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"not an http URL: {url!r}")
    return url.rstrip("/")


def url_argument(text: str) -> str:
    """`base_url` for argparse: a bad URL is a usage error naming the option."""
    try:
        return base_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def open_url(url: str, timeout_s: float = TIMEOUT_S) -> Any:
    """The open response to GET `url`; DaemonUnreachable or RequestRefused otherwise."""
    try:
        return urllib.request.urlopen(url, timeout=timeout_s)
    except urllib.error.HTTPError as err:
        with err:
            reason = _reason(err.read()) or err.reason
        if err.code == 404 and "no such path" in str(reason):
            raise DaemonUnreachable(
                f"{url} is not served here: not an ingestd daemon, or one too old for it"
            ) from None
        raise RequestRefused(str(reason)) from None
    except urllib.error.URLError as err:
        raise DaemonUnreachable(f"cannot reach {url}: {_why(err.reason)}; {HINT}") from None
    except (TimeoutError, ConnectionError) as err:
        raise DaemonUnreachable(f"cannot reach {url}: {_why(err)}; {HINT}") from None


def fetch_status(base: str, timeout_s: float = TIMEOUT_S) -> dict[str, Any]:
    """The daemon's `/status` document."""
    url = base + "/status"
    try:
        with open_url(url, timeout_s) as resp:
            doc = json.loads(resp.read())
    except RequestRefused as exc:
        raise DaemonUnreachable(f"{url} refused: {exc}") from None
    except (OSError, ValueError) as exc:  # a reset mid-body, or not JSON
        raise DaemonUnreachable(f"{url} did not answer with ingestd's status: {exc}") from None
    if not isinstance(doc, dict) or "totals" not in doc:
        raise DaemonUnreachable(f"{url} did not answer with ingestd's status")
    return doc


def _reason(body: bytes) -> str | None:
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return str(doc["error"]) if isinstance(doc, dict) and "error" in doc else None


def _why(reason: object) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, TimeoutError):
        return "no answer in time"
    return str(reason)
