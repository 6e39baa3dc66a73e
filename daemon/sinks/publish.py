"""What the publish sinks (`mqtt`, `nats`) share: one message per record, addressed by template.

Not a sink itself (the registry finds no component here).

Why the payloads are cut out of the wire bytes: a reading's message is its JSON object exactly
as in the JSON-lines wire format, and a derived record's is its dict as JSON; the wire encoding
of a batch is precisely those objects, one per line, readings first (`daemon/wire/encode.py`).
So a batch is encoded once, vectorised — by the encoder child when the batch comes encoded
ahead (the publish sinks declare `wants_wire_bytes`) — and split at its newlines (a JSON text
never holds a raw newline), instead of one `orjson.dumps` per reading.

Why the values in a topic are escaped: a template such as `sensors/{sensor_id}` promises one
topic level (one subject token) per placeholder; a sensor id holding the broker's separator or
a wildcard would break that promise or make the publish invalid. So each placeholder's value is
percent-encoded where the broker forbids or reserves a character (`%` itself included, so the
encoding is reversible); the payload still carries the id unchanged. The template's own text is
checked once, when the config loads.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterable
from typing import Any

from daemon.batch import Batch
from daemon.sensors import SENSORS
from daemon.wire.encode import encode_for_sink

PLACEHOLDERS = ("sensor_id", "kind")
Escape = Callable[[str], str]


def template_problem(template: str) -> str | None:
    """Why `template` is not a usable topic template, or None."""
    if not template.strip():
        return "must not be empty"
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"is not a template ({exc}); write a literal brace as {{{{ or }}}}"
    known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            return f"unknown placeholder {{{name}}} (known: {known})"
        if spec or conversion:
            return f"placeholder {{{name}}} takes no format spec or conversion"
    return None


def sample(template: str) -> str:
    """`template` with every placeholder as `x`: its literal text, to check against the rules."""
    return template.format(**dict.fromkeys(PLACEHOLDERS, "x"))


def percent_escaper(reserved: Iterable[str], *, spaces: bool = False, empty: str = "") -> Escape:
    """An escape: each character in `reserved`, `%`, control characters, lone surrogates (no
    broker takes them) and, with `spaces`, whitespace become `%XX` of their UTF-8 bytes;
    `empty` stands for the empty string."""
    special = frozenset(reserved) | {"%"}

    def needs(c: str) -> bool:
        code = ord(c)
        return (
            c in special
            or code < 0x20
            or code == 0x7F
            or 0xD800 <= code < 0xE000
            or (spaces and c.isspace())
        )

    def escape(value: str) -> str:
        if not value:
            return empty
        if not any(needs(c) for c in value):
            return value
        return "".join(
            "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass")) if needs(c) else c
            for c in value
        )

    return escape


class Addresses:
    """The topic (or subject) of each record: `template` with escaped values, each sensor's
    reading topic rendered once."""

    def __init__(self, template: str, escape: Escape) -> None:
        self._template = template
        self._escape = escape
        self._readings: dict[int, str] = {}

    def render(self, sensor_id: str, kind: str) -> str:
        return self._template.format(sensor_id=self._escape(sensor_id), kind=self._escape(kind))

    def readings(self, sensor: Iterable[int]) -> list[str]:
        """The topic of each row, by its sensor index."""
        cache = self._readings
        out: list[str] = []
        for s in sensor:
            topic = cache.get(s)
            if topic is None:
                topic = cache[s] = self.render(SENSORS.sensor_id(s), "reading")
            out.append(topic)
        return out

    def derived(self, record: dict[str, Any]) -> str:
        return self.render(str(record.get("sensor_id", "")), str(record.get("kind", "")))


def messages(batch: Batch, addresses: Addresses) -> list[tuple[str, bytes]]:
    """`(topic, payload)` per record of `batch`: each reading, then each derived record, in
    order. A batch that cannot be encoded raises `PermanentSinkError` (`encode_for_sink`)."""
    data = encode_for_sink(batch)
    if not data:
        return []
    lines = bytes(data).split(b"\n")
    lines.pop()  # after the last newline
    topics = addresses.readings(batch.sensor.tolist())
    topics.extend(addresses.derived(record) for record in batch.derived)
    if len(lines) != len(topics):  # the encoder's contract: one line per record
        raise AssertionError(f"{len(lines)} wire lines for {len(topics)} records")
    return list(zip(topics, lines, strict=True))
