"""Field types that TOML has no word for: durations and secrets.

Connectors (MQTT keep-alives, NATS reconnect waits, PostgreSQL passwords) need both; writing
`keepalive = "30s"` and `password = { env = "PG_PASSWORD" }` in a config is what people expect,
and a password must never reach a log line, `ingestd stages` or a validation error.
"""

from __future__ import annotations

import hmac
import math
import os
import re
from pathlib import Path
from typing import Annotated, Any

from daemon.config.core import DURATION, ConfigIssue, got, join, quote

Duration = Annotated[float, DURATION]
"""A span of time in seconds: `5`, `0.25`, `"250ms"`, `"5s"`, `"1.5m"`, `"2h"`.

The field's value is a plain float of seconds, and a `Range` bounds the seconds:
`timeout: Annotated[Duration, Range(gt=0), "doc"] = 5.0`.
"""

DURATION_HELP = "a duration (a number of seconds or '250ms', '5s', '2m', '1h')"
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_RE = re.compile(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*(ms|s|m|h)\s*")


def parse_duration(raw: Any) -> float | None:
    """Seconds from a TOML number or a unit string; None when `raw` is neither.

    A bare numeric string (`"5"`) is refused: without a unit it is a typo as often as not.
    """
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        try:
            seconds = float(raw)
        except OverflowError:
            return None
        return None if math.isnan(seconds) else seconds
    if isinstance(raw, str) and len(raw) <= 64:
        match = _DURATION_RE.fullmatch(raw)
        if match:
            return float(match.group(1)) * _UNITS[match.group(2)]
    return None


class Secret:
    """A string that is never printed: a password, a token, a private key.

    Built from a TOML string or from `{ env = "NAME" }` / `{ file = "/path" }`, read once when
    the config loads. `repr` and `str` are masked, so a config printed, logged or shown by
    `ingestd stages` says `Secret('***')`; `reveal()` is the one way to the value, easy to grep
    for. Equality and hash compare the value, so a reload notices a rotated password.
    """

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str) -> None:
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        # constant-time, and surrogatepass: an environment value may hold undecodable bytes
        mine = self._value.encode("utf-8", "surrogatepass")
        return hmac.compare_digest(mine, other._value.encode("utf-8", "surrogatepass"))

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Secret is immutable")

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        return (Secret, (self._value,))  # pickling to a worker process keeps the value


SECRET_HELP = 'a secret (a string, { env = "NAME" } or { file = "/path" })'
_MAX_SECRET_BYTES = 64 * 1024  # a secret file is small; /dev/zero or a log file is a mistake


def coerce_secret(raw: Any, path: str, issues: list[ConfigIssue]) -> Secret | None:
    """A `Secret` from `raw`, or None with issues appended. No issue ever echoes a value."""
    if isinstance(raw, str):
        return Secret(raw)
    if not isinstance(raw, dict):
        issues.append(ConfigIssue(path, f"must be {SECRET_HELP}, got {type(raw).__name__}"))
        return None
    before = len(issues)
    for key in raw:
        if key not in ("env", "file"):
            issues.append(ConfigIssue(join(path, key), "unknown key (known: env, file)"))
    sources = [k for k in ("env", "file") if k in raw]
    if len(sources) != 1:
        issues.append(
            ConfigIssue(path, "must have exactly one of env or file, got " + _keys(sources))
        )
    for key in sources:
        if not isinstance(raw[key], str):
            issues.append(ConfigIssue(join(path, key), f"must be a string, {got(raw[key])}"))
    if len(issues) > before:
        return None
    key = sources[0]
    try:
        return Secret(_from_env(raw[key]) if key == "env" else _from_file(raw[key]))
    except _Unavailable as exc:
        issues.append(ConfigIssue(path, str(exc)))
        return None


def _keys(keys: list[str]) -> str:
    return " and ".join(keys) if keys else "neither"


class _Unavailable(Exception):
    """The secret's source cannot be read; the message is the reason."""


def _from_env(name: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise _Unavailable(f"environment variable {_printable(name)} is not set")
    return value


def _from_file(name: str) -> str:
    label = quote(name)
    try:
        with Path(name).open("rb") as f:
            data = f.read(_MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise _Unavailable(f"cannot read secret file {label}: {exc.strerror or exc}") from None
    except ValueError as exc:  # an embedded NUL in the path
        raise _Unavailable(f"cannot read secret file {label}: {exc}") from None
    if len(data) > _MAX_SECRET_BYTES:
        raise _Unavailable(f"secret file {label} is larger than {_MAX_SECRET_BYTES // 1024} KiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _Unavailable(f"secret file {label} is not UTF-8 text") from None
    return text.rstrip("\r\n")


def _printable(name: str) -> str:
    return name if name and name.isprintable() and name.isascii() else quote(name)
