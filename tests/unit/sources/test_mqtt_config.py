"""The `mqtt` source's config: every bad key named with its reason (exit 78), no broker needed;
and the ordered release of PUBACKs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from daemon.cli import EX_CONFIG, main
from daemon.config.fields import ConfigIssue, build
from daemon.config.mqtt import Broker
from daemon.sources.messages import Message
from daemon.sources.mqtt import MqttSourceConfig
from daemon.sources.mqtt.acks import AckOrder
from daemon.sources.mqtt.inbox import Inbound

GOOD: dict[str, Any] = {"topics": ["plant/+/temp"]}


def issues_of(**keys: Any) -> list[str]:
    issues: list[ConfigIssue] = []
    built = build(MqttSourceConfig, GOOD | keys, "sources[0]", issues)
    assert (built is None) == bool(issues)
    return [str(i) for i in issues]


def built(**keys: Any) -> MqttSourceConfig:
    issues: list[ConfigIssue] = []
    config = build(MqttSourceConfig, GOOD | keys, "sources[0]", issues)
    assert issues == [] and config is not None, issues
    return config


def test_the_minimal_config_keeps_a_persistent_qos1_session() -> None:
    config = built()
    assert (config.qos, config.clean_start, config.session_expiry()) == (1, False, 86_400)
    assert config.broker() == Broker("127.0.0.1", 1883, tls=False)
    assert config.subscriptions() == ["plant/+/temp"]
    rules = config.rules()
    assert (rules.separator, rules.origin_key, rules.max_payload_bytes) == ("/", "topic", 1 << 20)


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"url": "tcp://h:1883"}, "sources[0].url: scheme must be mqtt:// or mqtts://"),
        ({"url": "mqtt://:1883"}, "sources[0].url: names no host"),
        ({"url": "mqtt://h:99999"}, "sources[0].url: is not a URL: Port out of range"),
        ({"url": "mqtt://h:0"}, "sources[0].url: must be scheme://host[:port] only"),
        ({"url": "mqtt://u:pw@h"}, "sources[0].url: must not hold credentials"),
        ({"url": "mqtt://h/sensors"}, "sources[0].url: must be scheme://host[:port] only"),
        ({"topics": []}, "sources[0].topics: must name at least one topic filter"),
        ({"topics": ["a/#", ""]}, "sources[0].topics: '' must not be empty"),
        ({"topics": ["a/#/b"]}, "sources[0].topics: 'a/#/b' '#' must be a whole level, and"),
        ({"topics": ["a/b#"]}, "sources[0].topics: 'a/b#' '#' must be a whole level"),
        ({"topics": ["a/+b"]}, "sources[0].topics: 'a/+b' '+' must be a whole level"),
        ({"topics": ["$share/g/a"]}, "sources[0].topics: '$share/g/a' is a shared subscription"),
        ({"topics": "a/b"}, "sources[0].topics: must be"),
        ({"qos": 2}, "sources[0].qos: must be one of"),
        ({"shared_group": "a/b"}, "sources[0].shared_group: must not hold '/', '+' or '#'"),
        ({"password": "pw"}, "sources[0].password: needs a username"),
        ({"tls": {"ca_file": ""}}, "sources[0].tls: is used only with an mqtts:// url"),
        (
            {"url": "mqtts://h", "tls": {"ca_file": "/nonexistent/ca.pem"}},
            "sources[0].tls.ca_file: no such file: /nonexistent/ca.pem",
        ),
        ({"url": "mqtts://h", "tls": {"cafile": "x"}}, "sources[0].tls.cafile: unknown key"),
        ({"receive_maximum": 0}, "sources[0].receive_maximum: must be >= 1"),
        ({"receive_maximum": 70_000}, "sources[0].receive_maximum: must be <= 65535"),
        ({"session_expiry_s": -1}, "sources[0].session_expiry_s: must be >= 0"),
        ({"max_batch": 0}, "sources[0].max_batch: must be >= 1"),
        ({"max_payload_bytes": 0}, "sources[0].max_payload_bytes: must be >= 1"),
        ({"keepalive_s": 0}, "sources[0].keepalive_s: must be >= 1"),
        ({"connect_timeout_s": 0}, "sources[0].connect_timeout_s: must be > 0"),
        ({"reconnect_max_s": 0}, "sources[0].reconnect_max_s: must be > 0"),
        ({"sensor_id_from": "header"}, "sources[0].sensor_id_from: must be one of"),
        ({"topic_pattern": "plant/{sensor_id}"}, "sources[0].topic_pattern: is used only with"),
        (
            {"sensor_id_from": "topic", "topic_pattern": "plant/+/temp"},
            "sources[0].topic_pattern: must hold {sensor_id} exactly once",
        ),
        ({"ack": "auto"}, "sources[0].ack: unknown key"),
    ],
)
def test_a_bad_key_is_named_with_its_reason(keys: dict[str, Any], expected: str) -> None:
    found = issues_of(**keys)
    assert any(issue.startswith(expected) for issue in found), found


def test_topics_are_required() -> None:
    issues: list[ConfigIssue] = []
    assert build(MqttSourceConfig, {}, "sources[0]", issues) is None
    assert [str(i) for i in issues] == ["sources[0].topics: is required"]


def test_a_client_certificate_needs_its_key(tmp_path: Path) -> None:
    cert = tmp_path / "client.pem"
    cert.write_text("not checked here, only that it exists")
    found = issues_of(url="mqtts://h", tls={"cert_file": str(cert)})
    assert found == ["sources[0].tls.key_file: needs the other"]


def test_mqtts_defaults_to_port_8883_and_tls() -> None:
    assert built(url="mqtts://broker.example").broker() == Broker("broker.example", 8883, True)


def test_a_shared_group_prefixes_every_filter() -> None:
    config = built(topics=["a/#", "b/+"], shared_group="ingest")
    assert config.subscriptions() == ["$share/ingest/a/#", "$share/ingest/b/+"]


def test_the_default_client_id_is_stable_and_differs_between_sources() -> None:
    config = built()
    first = config.client_id_for("sources[0]")
    assert first == built().client_id_for("sources[0]")  # a restart finds its session
    assert first != config.client_id_for("sources[1]")
    assert first.startswith("ingestd") and len(first) == 23
    assert built(client_id="plant-7").client_id_for("sources[0]") == "plant-7"


def test_session_expiry_is_whole_seconds_and_may_never_expire() -> None:
    assert built(session_expiry_s=1.6).session_expiry() == 2
    assert built(session_expiry_s=4_294_967_295).session_expiry() == 0xFFFF_FFFF


def test_secrets_are_never_printed() -> None:
    config = built(username="operator", password="hunter2")
    assert "hunter2" not in repr(config) and "operator" not in repr(config)
    assert config.password is not None and config.password.reveal() == "hunter2"


def test_the_memory_budget_counts_the_inbox_and_a_decoded_group() -> None:
    small, large = built(max_payload_bytes=1024), built(max_payload_bytes=64 << 20)
    assert 16 << 20 < small.worst_case_bytes() < 128 << 20
    assert large.worst_case_bytes() > small.worst_case_bytes() + 9 * (63 << 20)


def test_validate_exits_78_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ingestd.toml"
    path.write_text(
        '[[sources]]\ntype = "mqtt"\ntopics = ["a/#"]\nurl = "mqtts://h"\n\n'
        '[sources.tls]\nca_file = "/nonexistent/ca.pem"\n\n[[sinks]]\ntype = "blackhole"\n'
    )
    assert main(["validate", "-c", str(path)]) == EX_CONFIG
    assert "sources[0].tls.ca_file: no such file: /nonexistent/ca.pem" in capsys.readouterr().err


def test_a_valid_config_validates(tmp_path: Path) -> None:
    path = tmp_path / "ingestd.toml"
    path.write_text(
        '[[sources]]\ntype = "mqtt"\ntopics = ["plant/+/temp"]\nsensor_id_from = "topic"\n'
        'topic_pattern = "plant/{sensor_id}/temp"\nshared_group = "ingest"\n'
        'username = "u"\npassword = { env = "HOME" }\n\n[[sinks]]\ntype = "blackhole"\n'
    )
    assert main(["validate", "-c", str(path)]) == 0


# -- PUBACK order ---------------------------------------------------------------------------
def _inbound(mid: int, epoch: int = 1) -> Inbound:
    return Inbound(Message("t", b"{}", 0.0), mid, epoch)


def test_acks_go_out_in_arrival_order_each_group_once_taken() -> None:
    sent: list[tuple[int, list[int]]] = []
    order = AckOrder(lambda epoch, mids: sent.append((epoch, mids)))
    first = order.open([_inbound(1), _inbound(2)])
    rejected_only = order.open([_inbound(3)])
    order.done(rejected_only)  # done at once, but behind the group still in flight
    assert sent == [] and order.waiting == 2
    order.done(first)
    assert sent == [(1, [1, 2]), (1, [3])] and order.waiting == 0


def test_qos0_messages_have_nothing_to_ack_and_epochs_stay_apart() -> None:
    sent: list[tuple[int, list[int]]] = []
    order = AckOrder(lambda epoch, mids: sent.append((epoch, mids)))
    order.done(order.open([_inbound(0), _inbound(7, epoch=1), _inbound(7, epoch=2)]))
    assert sent == [(1, [7]), (2, [7])]
