"""What the publish sinks share: one message per record, cut from the wire lines, addressed by
a template whose values are escaped to one topic level (subject token) each."""

from __future__ import annotations

import json
from urllib.parse import unquote

import numpy as np
import pytest

from daemon.batch import Batch
from daemon.components import PermanentSinkError
from daemon.sinks.mqtt.sink import ESCAPE as MQTT_ESCAPE
from daemon.sinks.nats.sink import ESCAPE as NATS_ESCAPE
from daemon.sinks.publish import Addresses, messages, template_problem
from daemon.wire.encode import WIRE, encode_batch

ALERT = {"kind": "alert", "sensor_id": "P-1", "state": "firing", "value": 97.25}
FEATURES = {"kind": "features", "sensor_id": "P-2", "window_end_seq": 9, "mean": 1.5}


def two_sensor_batch() -> Batch:
    seq = np.arange(6)
    a = Batch.of_sensor("P-1", seq, 1.7e9 + seq, seq * 1.25, unit="kPa")
    b = Batch.of_sensor("P-2", seq, 1.7e9 + seq, seq * 2.5, unit="kPa", stale=seq % 2 == 0)
    both = Batch.concat([a, b])
    both.columns["normalized"] = np.linspace(0, 1, 12)
    both.derived = [ALERT, FEATURES]
    return both


def test_one_message_per_record_as_its_wire_line_readings_first() -> None:
    batch = two_sensor_batch()
    out = messages(batch, Addresses("t/{kind}/{sensor_id}", MQTT_ESCAPE))
    wire = encode_batch(batch).splitlines()
    assert [payload for _, payload in out] == wire
    assert [topic for topic, _ in out] == (
        ["t/reading/P-1"] * 6 + ["t/reading/P-2"] * 6 + ["t/alert/P-1", "t/features/P-2"]
    )
    first = json.loads(out[0][1])
    assert first["sensor_id"] == "P-1" and first["seq"] == 0 and first["normalized"] == 0.0
    assert json.loads(out[-2][1]) == ALERT


def test_bytes_encoded_ahead_give_the_same_messages() -> None:
    batch = two_sensor_batch()
    expected = messages(batch, Addresses("{sensor_id}", MQTT_ESCAPE))
    batch.remember(WIRE, memoryview(encode_batch(batch)))
    assert messages(batch, Addresses("{sensor_id}", MQTT_ESCAPE)) == expected


def test_an_empty_batch_is_no_message_and_an_unencodable_one_is_refused() -> None:
    empty = Batch.of_sensor("P-1", [], [], [])
    assert messages(empty, Addresses("{sensor_id}", MQTT_ESCAPE)) == []
    bad = Batch.of_sensor("P-1", [1], [float("nan")], [1.0])  # no time to print
    with pytest.raises(PermanentSinkError):
        messages(bad, Addresses("{sensor_id}", MQTT_ESCAPE))


@pytest.mark.parametrize(
    ("sensor_id", "mqtt", "nats"),
    [
        ("plain-01", "plain-01", "plain-01"),
        ("a/b", "a%2Fb", "a/b"),
        ("x+y#", "x%2By%23", "x+y#"),
        ("room 1.temp", "room 1.temp", "room%201%2Etemp"),
        ("*>", "*>", "%2A%3E"),
        ("50%", "50%25", "50%25"),
        ("tab\there", "tab%09here", "tab%09here"),
        ("größe", "größe", "größe"),
    ],
)
def test_values_are_percent_encoded_where_the_broker_reserves_characters(
    sensor_id: str, mqtt: str, nats: str
) -> None:
    assert MQTT_ESCAPE(sensor_id) == mqtt
    assert NATS_ESCAPE(sensor_id) == nats
    assert unquote(mqtt) == unquote(nats) == sensor_id  # reversible: `%` is escaped too


def test_an_empty_value_is_an_empty_level_in_mqtt_and_a_placeholder_token_in_nats() -> None:
    assert MQTT_ESCAPE("") == ""
    assert NATS_ESCAPE("") == "_"


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("s/{sensor_id}", None),
        ("s/{kind}/{sensor_id}/x", None),
        ("s/{sensor}", "unknown placeholder {sensor} (known: {sensor_id}, {kind})"),
        ("s/{sensor_id!r}", "placeholder {sensor_id} takes no format spec or conversion"),
        ("s/{0}", "unknown placeholder {0} (known: {sensor_id}, {kind})"),
        ("s/{sensor_id", "is not a template (expected '}' before end of string);"),
        ("  ", "must not be empty"),
    ],
)
def test_template_problems_are_worded(template: str, problem: str | None) -> None:
    found = template_problem(template)
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.startswith(problem)
