"""The `mqtt` and `nats` sinks' keys: every error names its key path and the reason."""

from __future__ import annotations

import pytest

from daemon.config import ConfigError, parse_config
from daemon.sinks.mqtt import MqttConfig
from daemon.sinks.nats import NatsSinkConfig


def config(sink: str) -> str:
    return f"""
[[sources]]
type = "simulated"
sensors = 2

[[sinks]]
{sink}
"""


def errors(sink: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(config(sink))
    return [str(issue) for issue in info.value.issues]


def test_the_defaults_load() -> None:
    for kind in ("mqtt", "nats"):
        (spec,) = parse_config(config(f'type = "{kind}"')).sinks
        assert spec.name == kind


def test_mqtt_url_must_be_mqtt_or_mqtts() -> None:
    assert errors('type = "mqtt"\nurl = "http://127.0.0.1:1883"') == [
        "sinks[0].url: scheme must be mqtt:// or mqtts://, got 'http://127.0.0.1:1883'"
    ]
    assert errors('type = "mqtt"\nurl = "mqtt://127.0.0.1:99999"') == [
        "sinks[0].url: is not a URL: Port out of range 0-65535"
    ]
    (issue,) = errors('type = "mqtt"\nurl = "mqtt://me:pw@127.0.0.1"')
    assert issue.startswith("sinks[0].url: must not hold credentials")


def test_mqtt_qos_2_is_refused() -> None:
    assert errors('type = "mqtt"\nqos = 2') == ["sinks[0].qos: must be one of 0, 1, got 2"]


def test_mqtt_topic_rules() -> None:
    assert errors('type = "mqtt"\ntopic = "s/+/{sensor_id}"') == [
        "sinks[0].topic: must not hold a wildcard (+ or #): a message is published to one topic"
    ]
    assert errors('type = "mqtt"\ntopic = "s/{id}"') == [
        "sinks[0].topic: unknown placeholder {id} (known: {sensor_id}, {kind})"
    ]


def test_mqtt_credentials_and_tls_keys() -> None:
    assert errors('type = "mqtt"\npassword = "pw"') == ["sinks[0].password: needs a username"]
    assert errors('type = "mqtt"\n[sinks.tls]\nca_file = "/etc/hostname"') == [
        "sinks[0].tls: is used only with an mqtts:// url"
    ]
    assert errors('type = "mqtt"\nurl = "mqtts://b"\n[sinks.tls]\ncert_file = "/nonexistent"') == [
        "sinks[0].tls.cert_file: no such file: /nonexistent",
        "sinks[0].tls.key_file: needs the other",
    ]


def test_mqtts_defaults_to_port_8883() -> None:
    broker = MqttConfig(url="mqtts://broker.example").broker()
    assert (broker.host, broker.port, broker.tls) == ("broker.example", 8883, True)


def test_the_derived_client_id_is_stable_and_differs_per_sink() -> None:
    mqtt = MqttConfig()
    assert mqtt.client_id_for("sinks[0]") == MqttConfig().client_id_for("sinks[0]")
    assert mqtt.client_id_for("sinks[0]") != mqtt.client_id_for("sinks[1]")
    assert len(mqtt.client_id_for("sinks[0]")) == 23
    assert MqttConfig(client_id="mine").client_id_for("sinks[0]") == "mine"


def test_nats_subject_rules() -> None:
    assert errors('type = "nats"\nsubject = "s.*.{sensor_id}"') == [
        "sinks[0].subject: must not hold a wildcard (* or >): a message is published to one subject"
    ]
    assert errors('type = "nats"\nsubject = "s..{sensor_id}"') == [
        "sinks[0].subject: has an empty token (a leading, trailing or double '.')"
    ]
    assert errors('type = "nats"\nsubject = "s {sensor_id}"') == [
        "sinks[0].subject: must not hold whitespace"
    ]


def test_nats_stream_keys() -> None:
    assert errors('type = "nats"\ncreate = true') == ["sinks[0].create: needs a stream to create"]
    assert errors('type = "nats"\nstream = "a.b"') == [
        "sinks[0].stream: 'a.b' must not contain '.'"
    ]
    assert errors('type = "nats"\nstream = "S"\njetstream = false') == [
        "sinks[0].stream: is used only with jetstream = true"
    ]


def test_nats_url_and_credentials() -> None:
    assert errors('type = "nats"\nurl = "mqtt://127.0.0.1:4222"') == [
        "sinks[0].url: 'mqtt://127.0.0.1:4222': the scheme must be nats:// or tls://"
    ]
    assert errors('type = "nats"\npassword = "pw"') == ["sinks[0].password: needs user"]


def test_a_created_stream_captures_every_subject_of_the_template() -> None:
    assert NatsSinkConfig(subject="ingestd.{kind}.{sensor_id}").capture() == "ingestd.*.*"
    assert NatsSinkConfig(subject="plant.s-{sensor_id}.{kind}.v1").capture() == "plant.*.*.v1"


def test_kinds_apply_to_the_publish_sinks() -> None:
    (spec,) = parse_config(config('type = "mqtt"\nkinds = ["alert"]')).sinks
    assert spec.resilience is not None and spec.resilience.kinds == ("alert",)
