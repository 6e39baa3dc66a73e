"""Broker payloads to reading columns: one JSON reading or a JSON array of them per message.

A group of messages is decoded at once, by the fastest of three paths that is sure of it. The
typed path (`typed`: msgspec structs, every field checked in C as it is parsed) takes each
message whose payload holds exactly the known fields with the right types, which is what lets
100-reading array payloads pass at millions of readings per second. The messages it refuses,
in runs, take the general path: orjson to dicts, then by column over Python lists while nothing
is unusual (extra fields, a quality of ""); anything unusual (a missing field, a string value,
NaN, a non-object element) sends the run down the per-element path, which applies the field
rules of `daemon.sources.file.fields` one reading at a time and words the reason of every
reject. Bad readings never stop the good ones of the same
message: each reject is its own dead-letter entry, with the topic (or subject) it came on.

Defaults that make a reading usable without every field (the issue's contract): no `ts` means
the time the message was received; no `seq` means `ts` in microseconds since the epoch, which a
redelivery of the same message reproduces as long as the message carries its `ts`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import Any, NamedTuple

import numpy as np
import orjson

from daemon.batch import INTERPOLATED, QUALITIES, Batch
from daemon.sensors import SENSORS
from daemon.sources.file import fields as ff
from daemon.sources.messages import columns, typed
from daemon.sources.messages.origin import sensor_from_origin

RAW_PREFIX_BYTES = 1024  # what the dead-letter file keeps of an oversized payload
_QUALITIES = set(QUALITIES)


class Message(NamedTuple):
    origin: str  # the topic or subject it was published on
    payload: bytes
    received: float  # epoch seconds at arrival


@dataclass(frozen=True)
class PayloadRules:
    max_payload_bytes: int = 1_048_576
    sensor_id_from: str = "payload"  # "payload" | "topic"
    topic_pattern: str = ""
    separator: str = "/"
    origin_key: str = "topic"  # the dead-letter field naming where a reject came from


Reject = tuple[str, Any, dict[str, Any]]


@dataclass
class Decoded:
    batch: Batch | None
    rejects: list[Reject] = field(default_factory=list)

    @property
    def readings(self) -> int:
        return 0 if self.batch is None else len(self.batch)


@dataclass
class _Elements:
    """Every candidate reading of a group, with the message it came from."""

    objs: list[Any] = field(default_factory=list)
    owner: list[int] = field(default_factory=list)  # index into the group's messages
    index: list[int] = field(default_factory=list)  # position in its array, -1 if not one


def decode(messages: Sequence[Message], rules: PayloadRules) -> Decoded:
    """The good readings of `messages` in message order, and a reasoned reject per bad one
    (in message order across runs; within a run, as `general` words them)."""
    rejects: list[Reject] = []
    parts: list[Batch] = []
    for run, batch in typed.runs(messages, rules):
        part = general(run, rules, rejects) if batch is None else batch
        if part is not None and len(part):
            parts.append(part)
    return Decoded(Batch.concat(parts) if parts else None, rejects)


def general(
    messages: Sequence[Message], rules: PayloadRules, rejects: list[Reject]
) -> Batch | None:
    """What the typed path refused: by column over dicts if nothing is unusual, else one
    element at a time; each reject appended to `rejects`."""
    elements = _unpack(messages, rules, rejects)
    ids = _sensor_ids(messages, rules, elements, rejects)
    batch = _fast(messages, elements, ids)
    if batch is None:
        batch = _per_element(messages, rules, elements, ids, rejects)
    return batch


def _unpack(messages: Sequence[Message], rules: PayloadRules, rejects: list[Reject]) -> _Elements:
    out = _Elements()
    limit = rules.max_payload_bytes
    for i, msg in enumerate(messages):
        where = {rules.origin_key: msg.origin}
        size = len(msg.payload)
        if size > limit:
            raw = msg.payload[:RAW_PREFIX_BYTES].decode("utf-8", "replace")
            reason = f"payload of {size} bytes exceeds max_payload_bytes ({limit})"
            rejects.append((reason, raw, {**where, "payload_bytes": size}))
            continue
        try:
            obj = _loads(msg.payload)
        except ValueError as exc:
            rejects.append((f"bad JSON: {exc}", _text(msg.payload), where))
            continue
        if isinstance(obj, dict):
            out.objs.append(obj)
            out.owner.append(i)
            out.index.append(-1)
        elif isinstance(obj, list) and obj:
            out.objs.extend(obj)
            out.owner.extend([i] * len(obj))
            out.index.extend(range(len(obj)))
        elif isinstance(obj, list):
            rejects.append(("an empty array holds no reading", _text(msg.payload), where))
        else:
            reason = f"not a JSON object or array: {type(obj).__name__}"
            rejects.append((reason, _text(msg.payload), where))
    return out


def _loads(payload: bytes) -> Any:
    """JSON, or JSON with the NaN/Infinity literals Python's `json.dumps` writes: strictly
    invalid, but common from Python publishers, and a NaN should reject one reading of an
    array (by the field rules), not the whole message."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        if b"NaN" not in payload and b"Infinity" not in payload:
            raise
    return json.loads(payload)  # ValueError (JSONDecodeError, UnicodeDecodeError) if not


def _sensor_ids(
    messages: Sequence[Message], rules: PayloadRules, elements: _Elements, rejects: list[Reject]
) -> list[str | None] | None:
    """Per element, the id its topic gives (None: the topic does not match, already rejected);
    None altogether when ids come from the payload."""
    if rules.sensor_id_from != "topic":
        return None
    match = sensor_from_origin(rules.topic_pattern, rules.separator)
    by_message: dict[int, str | None] = {}
    for i in dict.fromkeys(elements.owner):
        origin = messages[i].origin
        found = by_message[i] = match(origin)
        if found is None:
            pattern = rules.topic_pattern or "<last level>"
            reason = f"{rules.origin_key} {origin!r} gives no sensor_id ({pattern})"
            rejects.append((reason, _text(messages[i].payload), {rules.origin_key: origin}))
    return [by_message[i] for i in elements.owner]


def _fast(
    messages: Sequence[Message], elements: _Elements, topic_ids: list[str | None] | None
) -> Batch | None:
    """The whole group by column, or None at the first doubt."""
    objs = elements.objs
    if not objs or set(map(type, objs)) != {dict}:
        return None
    try:  # map over C callables: no Python frame per reading
        values = list(map(itemgetter("value"), objs))
        ids = list(map(itemgetter("sensor_id"), objs)) if topic_ids is None else topic_ids
    except KeyError:
        return None
    n = len(objs)
    units = list(map(dict.get, objs, repeat("unit", n), repeat("", n)))
    quality = list(map(dict.get, objs, repeat("quality", n), repeat("ok", n)))
    seqs = list(map(dict.get, objs, repeat("seq", n)))
    stamps = list(map(dict.get, objs, repeat("ts", n)))
    if not (
        set(map(type, ids)) == {str}
        and all(ids)
        and set(map(type, values)) <= {int, float}
        and set(map(type, units)) == {str}
        and set(quality) <= _QUALITIES
        and set(map(type, seqs)) <= {int, type(None)}
    ):
        return None
    ts = columns.stamps(stamps, [messages[i].received for i in elements.owner])
    value = np.array(values, dtype=np.float64)
    if ts is None or not np.isfinite(value).all():
        return None
    seq = columns.seqs(seqs, ts)
    if seq is None:
        return None
    codes = np.array(quality, dtype=object)
    interpolated = codes == "interpolated"
    sensor = SENSORS.intern_all(ids, units)  # type: ignore[arg-type]  # all str, checked above
    return columns.batch_of(sensor, seq, ts, value, stale=codes != "ok", interpolated=interpolated)


# sensor_id, unit, seq, ts, value, quality code (an index of QUALITIES)
_Row = tuple[str, str, int, float, float, int]


def _per_element(
    messages: Sequence[Message],
    rules: PayloadRules,
    elements: _Elements,
    topic_ids: list[str | None] | None,
    rejects: list[Reject],
) -> Batch | None:
    rows: list[_Row] = []
    for k, obj in enumerate(elements.objs):
        msg = messages[elements.owner[k]]
        sensor_id = None if topic_ids is None else topic_ids[k]
        if topic_ids is not None and sensor_id is None:
            continue  # its message was rejected for its topic, once
        try:
            rows.append(_row(obj, msg, sensor_id))
        except ff.FieldError as exc:
            where: dict[str, Any] = {rules.origin_key: msg.origin}
            if elements.index[k] >= 0:
                where["index"] = elements.index[k]
            rejects.append((str(exc), _element_text(obj, msg, elements.index[k]), where))
    if not rows:
        return None
    ids, units, seq, ts, value, quality = (list(c) for c in zip(*rows, strict=True))
    codes = np.array(quality, dtype=np.int8)
    sensor = SENSORS.intern_all(ids, units)
    return columns.batch_of(
        sensor, seq, ts, value, stale=codes > 0, interpolated=codes == INTERPOLATED
    )


def _row(obj: Any, msg: Message, topic_id: str | None) -> _Row:
    """One reading by the field rules, or FieldError with the reason."""
    if not isinstance(obj, dict):
        raise ff.FieldError(f"not a JSON object: {type(obj).__name__}")
    required = ("value",) if topic_id is not None else ("sensor_id", "value")
    missing = [k for k in required if k not in obj]
    if missing:
        raise ff.FieldError(f"missing field {', '.join(map(repr, missing))}")
    sensor_id = topic_id if topic_id is not None else ff.sensor_id(obj["sensor_id"])
    ts = ff.timestamp(obj["ts"]) if obj.get("ts") is not None else msg.received
    if obj.get("seq") is not None:
        seq = ff.seq(obj["seq"])
    else:
        micros = columns.micros(np.array([ts]))
        if micros is None:
            raise ff.FieldError(f"no seq, and ts {ts!r} gives none (before 1970 or too far)")
        seq = int(micros[0])
    return (
        sensor_id,
        ff.unit(obj.get("unit", "")),
        seq,
        ts,
        ff.value(obj["value"], text_ok=False),
        ff.quality(obj.get("quality", "ok")),
    )


def _text(payload: bytes) -> str:
    return payload.decode("utf-8", "replace")


def _element_text(obj: Any, msg: Message, index: int) -> str:
    """The rejected reading as text: the element of an array, or the whole payload."""
    if index < 0:
        return _text(msg.payload)
    return json.dumps(obj)  # not orjson: it writes NaN as null and refuses 65-bit integers
