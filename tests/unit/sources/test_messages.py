"""Broker payloads: every kind of bad input is one reasoned reject, and the good ones still flow."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.sensors import SensorTable
from daemon.sources.messages import Message, PayloadRules, decode, payload_issues
from daemon.sources.messages.payload import _fast, _per_element, _unpack, general
from daemon.sources.messages.typed import MAX_REFUSALS, runs

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


def per_element(messages: list[Message], rules: PayloadRules = RULES) -> list[dict[str, object]]:
    """The definition: every reading by the field rules, one at a time (no reject expected)."""
    rejects: list[tuple[str, object, dict[str, object]]] = []
    elements = _unpack(messages, rules, rejects)
    slow = _per_element(messages, rules, elements, None, rejects)
    assert rejects == []
    return [] if slow is None else slow.to_records()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(readings, st.lists(readings, min_size=1, max_size=4)), max_size=8))
def test_the_fast_paths_agree_with_the_field_rules(payloads: list[object]) -> None:
    messages = [msg(orjson.loads(orjson.dumps(p))) for p in payloads]
    slow = per_element(messages)
    assert records(messages) == slow  # the typed path (msgspec), where it takes the group
    rejects: list[tuple[str, object, dict[str, object]]] = []
    by_dicts = _fast(messages, _unpack(messages, RULES, rejects), None)  # orjson, by column
    assert by_dicts is None or by_dicts.to_records() == slow


def test_the_typed_path_takes_plain_payloads_and_leaves_unusual_ones() -> None:
    plain = {"sensor_id": "a", "seq": 1, "ts": 1.7e9, "value": 2, "unit": "C", "quality": "ok"}
    [(_, batch)] = runs([msg([plain] * 3), msg(plain)], RULES)
    assert batch is not None and len(batch) == 4
    unusual = [{**plain, "site": "north"}, {**plain, "quality": ""}, {**plain, "seq": 1.0}]
    for payload in unusual:
        assert [batch for _, batch in runs([msg(payload)], RULES)] == [None]
    cut = runs([msg(plain), msg(unusual[0]), msg(unusual[1]), msg([plain] * 2)], RULES)
    assert [(len(run), batch is None) for run, batch in cut] == [(1, False), (2, True), (1, False)]
    assert_as_general([msg(p) for p in unusual], RULES)


def test_a_group_the_typed_path_keeps_refusing_is_left_whole_to_the_general_path() -> None:
    plain = {"sensor_id": "a", "seq": 1, "value": 2}
    group = [msg({**plain, "site": "north"})] * (MAX_REFUSALS + 2) + [msg(plain)]
    [(run, batch)] = runs(group, RULES)  # refused MAX_REFUSALS times, then not tried again
    assert batch is None and list(run) == group
    assert_as_general(group, RULES)


# JSON number text of every shape: what msgspec parses must be what orjson parses
number_text = st.from_regex(r"\A-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,24})?([eE][+-]?[0-9]{1,3})?\Z")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(number_text, number_text, st.booleans()), min_size=1, max_size=6))
def test_number_text_decodes_as_the_general_path_decodes_it(
    numbers: list[tuple[str, str, bool]],
) -> None:
    stamp = ',"ts":{}'.format
    payloads = [
        ('{"sensor_id":"n","value":' + value + (stamp(ts) if with_ts else "") + "}").encode()
        for value, ts, with_ts in numbers
    ]
    assert_as_general([Message("t/n", p, NOW) for p in payloads], RULES)


def assert_as_general(messages: list[Message], rules: PayloadRules) -> None:
    """`decode` (typed runs, the rest general) gives the readings and the rejects that the
    general path alone gives for the whole group (rejects compared as a multiset: across
    runs they come in message order)."""
    decoded = decode(messages, rules)
    rejects: list[tuple[str, object, dict[str, object]]] = []
    batch = general(messages, rules, rejects)
    want = [] if batch is None else batch.to_records()
    assert ([] if decoded.batch is None else decoded.batch.to_records()) == want
    assert sorted(map(repr, decoded.rejects)) == sorted(map(repr, rejects))


GOOD = {"sensor_id": "g", "seq": 5, "ts": 1.7e9, "value": 1.0}
ODD_PAYLOADS = [
    b"not json",
    b"[]",
    b"{}",
    b"null",
    b'[{"sensor_id":"g","value":1},7]',
    b'{"sensor_id":"g","value":1,"x":"\xff"}',  # a bad UTF-8 byte msgspec would skip unread
    b'{"sensor_id":"g","value":1,"x":1e400}',  # infinity, where msgspec would skip it
    b'{"sensor_id":"g","value":1,"x":[' + b"[" * 1100 + b"]" * 1100 + b"]}",  # deep
    b'{"sensor_id":"g","value":NaN}',
    b'{"sensor_id":"g","value":1e400}',
    b'{"sensor_id":"g","value":1,"seq":18446744073709551616}',
    b'{"sensor_id":"g","value":1,"seq":9223372036854775808}',
    b'{"sensor_id":"g","value":1,"seq":1e3}',
    b'{"sensor_id":"g","value":1,"ts":-1}',
    b'{"sensor_id":"g","value":1,"ts":"1.7e9"}',
    b'{"sensor_id":"g","value":1,"ts":1e300}',
    b'{"sensor_id":"g","value":1,"ts":null,"seq":null,"unit":"K"}',
    b'{"sensor_id":"g","value":1,"quality":""}',
    b'{"sensor_id":"g","value":1,"quality":"interpolated"}',
    b'{"sensor_id":"g","value":1,"unit":null}',
    b'{"sensor_id":"\\ud800","value":1}',  # a lone surrogate
    b'{"sensor_id":{"a":1},"value":1}',
    b'{"sensor_id":1' + b"0" * 400 + b',"value":1}',  # past 1e308: orjson refuses it
    b'{"sensor_id":1' + b"0" * 30 + b',"value":1}',
    b'{"sensor_id":"g","value":true}',
    b'{"sensor_id":"","value":1}',
    b'{"sensor_id":"g"}',
    b'{"value":1}',
    b'{"sensor_id":"g","value":1,"seq":-1}',
    b'{"sensor_id":"g","value":1,"quality":"great"}',
    b'{"sensor_id":"g","value":1,"unit":3}',
    b'{"sensor_id":"g","value":"1"}',
    b'\xef\xbb\xbf{"sensor_id":"g","value":1}',
    b'{"sensor_id":"g","value":1} x',
    json.dumps([GOOD] * 40).encode(),  # past the max_payload_bytes of these tests
]


any_char = st.one_of(st.characters(), st.integers(0xD800, 0xDFFF).map(chr))  # surrogates too


def odd_text(text: str, escaped: bool) -> bytes:
    """Any text (lone surrogates too) as a sensor_id and unit: \\u-escaped, or as raw bytes
    (a surrogate then is invalid UTF-8)."""
    reading = {"sensor_id": text, "value": 1, "unit": text}
    if escaped:
        return json.dumps(reading).encode()
    return json.dumps(reading, ensure_ascii=False).encode("utf-8", "surrogatepass")


@settings(max_examples=120, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(ODD_PAYLOADS),
            st.builds(lambda p: json.dumps(p).encode(), st.one_of(readings, st.lists(readings))),
            st.builds(odd_text, st.text(any_char, max_size=4), st.booleans()),
        ),
        min_size=1,
        max_size=8,
    ),
    st.sampled_from(["plant/a/temp", "plant//temp", "other/b"]),
    st.sampled_from(
        [
            PayloadRules(max_payload_bytes=1000),
            PayloadRules(max_payload_bytes=1000, sensor_id_from="topic"),
            PayloadRules(
                max_payload_bytes=1000, sensor_id_from="topic", topic_pattern="plant/{sensor_id}/+"
            ),
        ]
    ),
)
def test_a_group_of_odd_and_good_messages_decodes_as_the_general_path_decodes_it(
    payloads: list[bytes], topic: str, rules: PayloadRules
) -> None:
    assert_as_general([Message(topic, p, NOW) for p in payloads], rules)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from(["", "C"])), max_size=30))
def test_interning_ids_of_one_unit_agrees_with_interning_pairs(
    pairs: list[tuple[str, str]],
) -> None:
    by_pairs, by_unit = SensorTable(), SensorTable()
    for unit in ("C", ""):  # groups of one unit each, in turn
        ids = [i for i, u in pairs if u == unit]
        assert list(by_unit.intern_ids(ids, unit)) == list(
            by_pairs.intern_all(ids, [unit] * len(ids))
        )
    assert [(by_unit.sensor_id(i), by_unit.unit(i)) for i in range(len(by_unit))] == [
        (by_pairs.sensor_id(i), by_pairs.unit(i)) for i in range(len(by_pairs))
    ]
