"""Broker payloads: every kind of bad input is one reasoned reject, and the good ones still flow."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.sources.messages import Message, PayloadRules, decode, payload_issues
from daemon.sources.messages.payload import _per_element, _unpack

NOW = 1_800_000_000.25
RULES = PayloadRules()


def msg(payload: object, topic: str = "plant/s1/temp") -> Message:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Message(topic, raw, NOW)


def records(messages: list[Message], rules: PayloadRules = RULES) -> list[dict[str, object]]:
    batch = decode(messages, rules).batch
    return [] if batch is None else batch.to_records()


def test_one_reading_and_an_array_keep_message_order() -> None:
    got = records(
        [
            msg({"sensor_id": "a", "seq": 1, "ts": 10.0, "value": 1.5, "unit": "C"}),
            msg([{"sensor_id": "b", "seq": 7, "ts": "2026-01-01T00:00:00Z", "value": 2}] * 2),
        ]
    )
    assert [(r["sensor_id"], r["seq"], r["value"], r["unit"]) for r in got] == [
        ("a", 1, 1.5, "C"),
        ("b", 7, 2.0, ""),
        ("b", 7, 2.0, ""),
    ]
    assert got[1]["ts"] == 1_767_225_600.0


def test_defaults_seq_from_ts_micros_and_ts_from_receipt() -> None:
    with_ts, without_ts = records(
        [msg({"sensor_id": "a", "ts": 12.000001, "value": 1}), msg({"sensor_id": "a", "value": 2})]
    )
    assert with_ts["seq"] == 12_000_001  # the same on a redelivery of the same message
    assert without_ts["ts"] == NOW
    assert without_ts["seq"] == round(NOW * 1e6)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "bad JSON"),
        (b"\xff\xfe", "bad JSON"),
        (b"[]", "empty array"),
        (b'"a string"', "not a JSON object or array: str"),
        ({"seq": 1, "value": 1}, "missing field 'sensor_id'"),
        ({"sensor_id": "a", "seq": 1}, "missing field 'value'"),
        ({"sensor_id": "a", "value": "12"}, "value must be a number"),
        ({"sensor_id": "a", "value": True}, "value must be a number"),
        ({"sensor_id": "", "value": 1}, "sensor_id must be a non-empty string"),
        ({"sensor_id": "a", "seq": -1, "value": 1}, "seq must be >= 0"),
        ({"sensor_id": "a", "seq": 1.5, "value": 1}, "seq must be an integer"),
        ({"sensor_id": "a", "ts": "yesterday", "value": 1}, "bad timestamp"),
        ({"sensor_id": "a", "quality": "great", "value": 1}, "quality must be"),
        ({"sensor_id": "a", "unit": 3, "value": 1}, "unit must be a string"),
        (b'{"sensor_id": "a", "value": NaN}', "value must be finite"),
        (b'{"sensor_id": "a", "value": Infinity}', "value must be finite"),
    ],
)
def test_each_kind_of_bad_payload_is_one_reject_with_reason_and_topic(
    payload: object, reason: str
) -> None:
    decoded = decode([msg(payload), msg({"sensor_id": "ok", "seq": 1, "value": 1})], RULES)
    assert decoded.readings == 1  # the good message beside it flows
    [(why, raw, extra)] = decoded.rejects
    assert reason in why
    assert extra["topic"] == "plant/s1/temp"
    assert isinstance(raw, str) and raw


def test_an_array_with_bad_elements_keeps_its_good_ones() -> None:
    payload = b'[{"sensor_id":"a","seq":1,"value":1},{"sensor_id":"a","seq":2,"value":NaN},7,'
    payload += b'{"sensor_id":"a","seq":3,"value":3}]'
    decoded = decode([msg(payload)], RULES)
    assert decoded.batch is not None and list(decoded.batch.seq) == [1, 3]
    assert [(extra["index"], why) for why, _, extra in decoded.rejects] == [
        (1, "value must be finite, got nan"),
        (2, "not a JSON object: int"),
    ]
    assert decoded.rejects[0][1] == '{"sensor_id": "a", "seq": 2, "value": NaN}'


def test_an_oversized_payload_is_rejected_unread_and_its_prefix_kept() -> None:
    big = msg([{"sensor_id": "a", "value": 1}] * 5000)
    decoded = decode([big], PayloadRules(max_payload_bytes=1000))
    [(why, raw, extra)] = decoded.rejects
    assert decoded.batch is None
    assert "exceeds max_payload_bytes (1000)" in why
    assert extra["payload_bytes"] == len(big.payload) and len(raw) == 1024


def test_sensor_id_from_the_topic_last_level_or_pattern() -> None:
    last = PayloadRules(sensor_id_from="topic")
    assert [r["sensor_id"] for r in records([msg({"value": 1}, "a/b/dev9")], last)] == ["dev9"]
    pattern = PayloadRules(sensor_id_from="topic", topic_pattern="plant/{sensor_id}/+")
    decoded = decode([msg({"value": 1}, "plant/s7/temp"), msg({"value": 2}, "other/s7")], pattern)
    assert decoded.batch is not None and decoded.batch.to_records()[0]["sensor_id"] == "s7"
    [(why, _, extra)] = decoded.rejects
    assert "gives no sensor_id" in why and extra == {"topic": "other/s7"}
    subjects = PayloadRules(
        sensor_id_from="topic", topic_pattern="fleet.{sensor_id}.#", separator=".",
        origin_key="subject",
    )  # fmt: skip
    assert [r["sensor_id"] for r in records([msg({"value": 1}, "fleet.x.a.b")], subjects)] == ["x"]


def test_config_issues_name_the_key() -> None:
    assert payload_issues("payload", "") == []
    assert payload_issues("header", "")[0][0] == "sensor_id_from"
    assert payload_issues("topic", "a/b")[0] == (
        "topic_pattern",
        "must hold {sensor_id} exactly once",
    )
    assert payload_issues("topic", "a/#/{sensor_id}")[0][1] == "'#' may only be the last level"
    assert payload_issues("payload", "a/{sensor_id}")[0][1].startswith("is used only")


readings = st.fixed_dictionaries(
    {"sensor_id": st.sampled_from(["a", "b", "c"]), "value": st.floats(-1e6, 1e6)},
    optional={
        "seq": st.integers(0, 2**40),
        "ts": st.one_of(st.floats(0, 2e9), st.just("2026-05-01T12:00:00.5Z")),
        "unit": st.sampled_from(["", "C"]),
        "quality": st.sampled_from(["ok", "stale", "interpolated"]),
    },
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(readings, st.lists(readings, min_size=1, max_size=4)), max_size=8))
def test_the_fast_path_agrees_with_the_field_rules(payloads: list[object]) -> None:
    messages = [msg(orjson.loads(orjson.dumps(p))) for p in payloads]
    fast = records(messages)
    rejects: list[tuple[str, object, dict[str, object]]] = []
    slow = _per_element(messages, RULES, _unpack(messages, RULES, rejects), None, rejects)
    assert rejects == []
    assert fast == ([] if slow is None else slow.to_records())
