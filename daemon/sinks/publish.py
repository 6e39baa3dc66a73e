"""What the publish sinks (`mqtt`, `nats`) share: one message per record, addressed by template.

Not a sink itself (the registry finds no component here): `PublishSink` is the base both
derive from, the write they share (records → one connection → every acknowledgement, and a
failed connection abandoned whole), each broker filling in how to connect and publish.

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
from daemon.components import ConfigT, Sink, SinkError
from daemon.observability import events
from daemon.runtime import ComponentContext
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


class PublishSink(Sink[ConfigT]):
    """One message per record; `write` returns once the broker acknowledged every one."""

    wants_wire_bytes = True  # the messages are cut from the batch's JSON lines

    def __init__(self, config: ConfigT, ctx: ComponentContext, addresses: Addresses) -> None:
        super().__init__(config, ctx)
        self._addresses = addresses
        self._gauge = ctx.gauge()
        self._gauge.update(messages=0, batches=0, connects=0)

    async def open(self) -> None:
        """Connect now if the broker answers; if not, the first write tries again (a broker
        that is down never stops the daemon: writes fail, the breaker opens, batches spool)."""
        try:
            await self._connected()
        except SinkError as exc:
            self.ctx.log.warning(events.SINK_OPEN_FAILED, sink=self.ctx.label, error=str(exc))

    async def write(self, batch: Batch) -> None:
        records = messages(batch, self._addresses)
        if not records:
            return
        connection = await self._connected()
        try:
            await self._publish(connection, records)
        except BaseException as exc:  # a failure or a cancelled write: that connection is spent
            self._drop()
            failure = self._failure(exc)
            if failure is exc:
                raise
            raise failure from exc
        self._gauge["messages"] += len(records)
        self._gauge["batches"] += 1

    async def flush(self) -> None:
        """Nothing to do: `write` returns once the broker has every message."""

    def _failure(self, exc: BaseException) -> BaseException:
        """What a failed publish raises (the broker's errors as SinkError); `exc` itself by
        default."""
        return exc

    async def _connected(self) -> Any:
        """The live connection, connecting first if there is none (SinkError if it fails)."""
        raise NotImplementedError

    async def _publish(self, connection: Any, records: list[tuple[str, bytes]]) -> None:
        raise NotImplementedError

    def _drop(self) -> None:
        """Abandon the current connection (never reused after a failed batch)."""
        raise NotImplementedError
