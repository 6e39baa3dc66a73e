"""The typed path: msgspec decodes each payload straight into reading structs.

Why: decoding payloads to dicts and then checking each column's types in Python cost about a
microsecond per reading, most of what a broker pipeline may spend on one. Decoded into
`_Reading` structs, every field's type and range is checked in C as it is parsed, and a column
is then one attribute read per reading.

Why it accepts nothing the field rules (`daemon.sources.file.fields`) refuse: a struct admits
only what they admit — a non-empty string `sensor_id`, a number that is not a bool, a `seq` in
0..2**63-1, a string `unit`, a known `quality` — and refuses unknown fields, because msgspec
skips those unread: a bad UTF-8 byte or a 1e400 there would pass, where orjson (the general
path) refuses the whole message. Whatever a struct refuses — a wrong type, an unknown field,
NaN, a bad byte, an empty array, an oversized payload, a topic that gives no id — sends that
message to the general path of `payload`, which words each reject; a run of messages whose
columns then fail a check (a stamp not finite, ISO text of mixed shapes, a seq from a stamp
before 1970) goes there whole. So the typed path changes how fast, never what.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from itertools import chain, islice
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

import msgspec
import numpy as np

from daemon.batch import QUALITIES, Batch, SensorArray
from daemon.sensors import SENSORS
from daemon.sources.file import fields as ff
from daemon.sources.messages import columns
from daemon.sources.messages.origin import sensor_from_origin

if TYPE_CHECKING:
    from daemon.sources.messages.payload import Message, PayloadRules

_SensorId = Annotated[str, msgspec.Meta(min_length=1)]
_Seq = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
_Quality = Literal["ok", "stale", "interpolated"]
assert get_args(_Quality) == QUALITIES, "the struct must admit exactly the known qualities"


class _Reading(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    sensor_id: _SensorId
    value: float  # a JSON integer or float; never a bool, a string or null (strict decoding)
    seq: _Seq | None = None
    ts: float | str | None = None
    unit: str = ""
    quality: _Quality = "ok"


class _TopicReading(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A reading whose id is its topic's: the payload's own `sensor_id`, if any, is not used
    (the field rules ignore it too), but must still be well-formed JSON scalar text."""

    value: float
    seq: _Seq | None = None
    ts: float | str | None = None
    unit: str = ""
    quality: _Quality = "ok"
    # not `int`: msgspec reads any integer text into one, where orjson refuses past 1e308
    sensor_id: str | float | bool | None = None


_Parsed = _Reading | _TopicReading | list[_Reading] | list[_TopicReading]
_DECODERS: dict[bool, msgspec.json.Decoder[Any]] = {
    False: msgspec.json.Decoder(_Reading | list[_Reading]),
    True: msgspec.json.Decoder(_TopicReading | list[_TopicReading]),
}

# Consecutive messages and their batch; None: the run is the general path's to decode
Run = tuple[Sequence["Message"], Batch | None]
_Match = Callable[[str], str | None]
# Refused messages after which the rest of a group goes to the general path untried: a refusal
# costs an exception (~1 us), so a stream the typed path never takes (an extra field in every
# reading, say) pays it this often per group, not once per message.
MAX_REFUSALS = 3


def runs(messages: Sequence[Message], rules: PayloadRules) -> list[Run]:
    """`messages` cut into runs, in order: typed ones already decoded, the rest left."""
    from_topic = rules.sensor_id_from == "topic"
    decode = _DECODERS[from_topic].decode
    match = sensor_from_origin(rules.topic_pattern, rules.separator) if from_topic else None
    payloads = [m.payload for m in messages]
    sizes = list(map(len, payloads))
    limit = rules.max_payload_bytes
    oversized = (
        [i for i, size in enumerate(sizes) if size > limit] if max(sizes, default=0) > limit else []
    )
    out: list[Run] = []
    start, refusals = 0, 0
    while start < len(messages) and refusals < MAX_REFUSALS:
        stop = next((i for i in oversized if i >= start), len(messages))
        parsed = _decoded(decode, islice(payloads, start, stop))
        taken = len(parsed)
        ids = None
        if match is not None:
            ids = _topic_ids(messages[start : start + taken], match)
            if None in ids:  # a topic that gives no id: the general path rejects its message
                taken = ids.index(None)
                del parsed[taken:], ids[taken:]
        if taken:
            run = messages if taken == len(messages) else messages[start : start + taken]
            out.append((run, _columns(run, parsed, ids)))  # type: ignore[arg-type]  # no None
            start += taken
        if start < len(messages):  # the message the typed path refused
            out.append((messages[start : start + 1], None))
            start, refusals = start + 1, refusals + 1
    if start < len(messages):  # refused too often: the rest is left untried
        out.append((messages[start:], None))
    return out if len(out) == 1 else _merged(out)


def _decoded(decode: Callable[[bytes], _Parsed], payloads: Iterable[bytes]) -> list[_Parsed]:
    """The readings of the leading payloads the typed path takes (all of them, usually),
    decoded in C loops with no Python per message; the first it refuses ends them."""
    parsed: list[_Parsed] = []
    with contextlib.suppress(msgspec.DecodeError):  # ValidationError too: its subclass
        parsed.extend(map(decode, payloads))  # keeps what was decoded before a refusal
    if not all(parsed):  # an empty array: the general path says why it holds nothing
        del parsed[next(i for i, obj in enumerate(parsed) if not obj) :]
    return parsed


def _topic_ids(messages: Sequence[Message], match: _Match) -> list[str | None]:
    """The sensor id per message from its topic, matching each distinct topic once."""
    origins = [m.origin for m in messages]
    found = {origin: match(origin) for origin in set(origins)}
    return list(map(found.__getitem__, origins))


def _merged(out: list[Run]) -> list[Run]:
    """Adjacent runs left for the general path as one (it then words their rejects in the
    order it would for the two together)."""
    merged: list[Run] = []
    for run, batch in out:
        if batch is None and merged and merged[-1][1] is None:
            merged[-1] = ([*merged[-1][0], *run], None)
        else:
            merged.append((run, batch))
    return merged


def _columns(
    messages: Sequence[Message], parsed: Sequence[_Parsed], topic_ids: list[str] | None
) -> Batch | None:
    """A run's readings by column, or None if a column check fails (see the module doc)."""
    flat, counts = _flatten(parsed)
    n = len(flat)
    value = np.array([r.value for r in flat], dtype=np.float64)
    ts = _stamps([r.ts for r in flat], messages, counts)
    if ts is None or not np.isfinite(value).all():
        return None
    seq = columns.seqs([r.seq for r in flat], ts)
    if seq is None:
        return None
    units = [r.unit for r in flat]
    one_unit = units.count(units[0]) == n
    if topic_ids is not None:
        sensor = _topic_sensors(topic_ids, units, counts, one_unit)
    elif one_unit:
        sensor = SENSORS.intern_ids([r.sensor_id for r in flat], units[0])  # type: ignore[misc]
    else:
        sensor = SENSORS.intern_all([r.sensor_id for r in flat], units)  # type: ignore[misc]
    quality = [r.quality for r in flat]
    if quality.count("ok") == n:  # the common case: no object array, no comparisons
        return columns.batch_of(sensor, seq, ts, value, stale=None, interpolated=None)
    codes = np.array(quality, dtype=object)
    return columns.batch_of(
        sensor, seq, ts, value, stale=codes != "ok", interpolated=codes == "interpolated"
    )


def _flatten(parsed: Sequence[_Parsed]) -> tuple[list[_Reading | _TopicReading], list[int] | None]:
    """Every reading in order, and the number per message (None: one each, no repeat)."""
    kinds = set(map(type, parsed))
    if list not in kinds:
        return list(parsed), None  # type: ignore[arg-type]  # all single readings
    if len(kinds) == 1:
        return list(chain.from_iterable(parsed)), list(map(len, parsed))  # type: ignore[arg-type]
    flat: list[_Reading | _TopicReading] = []
    counts: list[int] = []
    for obj in parsed:
        if type(obj) is list:
            flat += obj
            counts.append(len(obj))
        else:
            flat.append(obj)  # type: ignore[arg-type]
            counts.append(1)
    return flat, counts


def _stamps(
    raw: list[float | str | None], messages: Sequence[Message], counts: list[int] | None
) -> ff.F64 | None:
    """`ts` per reading; the receive time of its message where it has none."""
    kinds = set(map(type, raw))
    if kinds == {float}:  # msgspec makes every JSON number of a float field a float
        out = np.array(raw, dtype=np.float64)
        return out if np.isfinite(out).all() else None
    if type(None) not in kinds:
        return columns.stamp_column(raw)  # ISO text, or mixed: the column rules decide
    received = np.array([m.received for m in messages], dtype=np.float64)
    if counts is not None:
        received = np.repeat(received, counts)
    if kinds == {type(None)}:
        return received if np.isfinite(received).all() else None
    return columns.stamps(raw, received.tolist())


def _topic_sensors(
    topic_ids: list[str], units: list[str], counts: list[int] | None, one_unit: bool
) -> SensorArray:
    """The sensor index per reading, its id its message's topic's."""
    if one_unit:
        per_message = SENSORS.intern_ids(topic_ids, units[0])
        return per_message if counts is None else np.repeat(per_message, counts)
    per = counts or [1] * len(topic_ids)
    ids = [tid for tid, count in zip(topic_ids, per, strict=True) for _ in range(count)]
    return SENSORS.intern_all(ids, units)
