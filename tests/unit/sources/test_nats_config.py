"""The `nats` source's config: every bad key named with its reason (exit 78), no server needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from daemon.cli import EX_CONFIG, main
from daemon.config.fields import ConfigIssue, build
from daemon.sources.nats import NatsConfig
from daemon.sources.nats.config import nats_pattern
from daemon.sources.nats.subjects import covers, subject_issue

GOOD: dict[str, Any] = {"stream": "SENSORS", "subjects": ["sensors.>"]}


def issues_of(**keys: Any) -> list[str]:
    issues: list[ConfigIssue] = []
    built = build(NatsConfig, GOOD | keys, "sources[0]", issues)
    assert (built is None) == bool(issues)
    return [str(i) for i in issues]


def test_the_minimal_config_builds_with_the_documented_defaults() -> None:
    issues: list[ConfigIssue] = []
    config = build(NatsConfig, GOOD, "sources[0]", issues)
    assert issues == [] and config is not None
    assert (config.url, config.durable, config.create) == ("nats://127.0.0.1:4222", "ingestd", True)
    assert config.subjects == ("sensors.>",)
    rules = config.rules()
    assert (rules.separator, rules.origin_key, rules.sensor_id_from) == (".", "subject", "payload")


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"url": "http://127.0.0.1:4222"}, "sources[0].url: 'http://127.0.0.1:4222': the scheme"),
        ({"url": ""}, "sources[0].url: must not be empty"),
        ({"url": "nats://:4222"}, "sources[0].url: 'nats://:4222' names no host"),
        ({"url": "nats://h:99999"}, "sources[0].url: 'nats://h:99999': Port out of range"),
        ({"stream": "a.b"}, "sources[0].stream: 'a.b' must not contain '.'"),
        ({"stream": ""}, "sources[0].stream: must not be empty"),
        ({"durable": "my durable"}, "sources[0].durable: 'my durable' must not contain ' '"),
        ({"subjects": []}, "sources[0].subjects: must not be empty with create = true"),
        ({"subjects": ["a..b"]}, "sources[0].subjects: 'a..b' has an empty token"),
        ({"subjects": ["a.>.b"]}, "sources[0].subjects: 'a.>.b': '>' may only be the last"),
        ({"subjects": ["a.b*"]}, "sources[0].subjects: 'a.b*': a wildcard must be a whole"),
        ({"filter_subject": "other.x"}, "sources[0].filter_subject: 'other.x' is not within"),
        ({"batch": 0}, "sources[0].batch: must be >= 1"),
        ({"batch": 600, "max_ack_pending": 500}, "sources[0].max_ack_pending: must be >= batch"),
        ({"ack_wait_s": 0}, "sources[0].ack_wait_s: must be > 0"),
        ({"fetch_linger_s": 5}, "sources[0].fetch_linger_s: must be <= 1"),
        ({"max_payload_bytes": 0}, "sources[0].max_payload_bytes: must be >= 1"),
        ({"sensor_id_from": "header"}, "sources[0].sensor_id_from: must be one of"),
        ({"topic_pattern": "a.{sensor_id}"}, "sources[0].topic_pattern: is used only with"),
        (
            {"sensor_id_from": "topic", "topic_pattern": "plant.*.temp"},
            "sources[0].topic_pattern: must hold {sensor_id} exactly once",
        ),
        ({"password": "pw"}, "sources[0].password: needs user"),
        ({"user": "u", "token": "t"}, "sources[0].token: is instead of user/password"),
        ({"connect_timeout_s": -1}, "sources[0].connect_timeout_s: must be > 0"),
        ({"acks": "sync"}, "sources[0].acks: unknown key"),
    ],
)
def test_a_bad_key_is_named_with_its_reason(keys: dict[str, Any], expected: str) -> None:
    found = issues_of(**keys)
    assert any(issue.startswith(expected) for issue in found), found


def test_a_missing_stream_is_named() -> None:
    issues: list[ConfigIssue] = []
    assert build(NatsConfig, {"subjects": ["a"]}, "sources[0]", issues) is None
    assert any(str(i).startswith("sources[0].stream:") for i in issues), issues


def test_binding_to_existing_ones_needs_no_subjects() -> None:
    assert issues_of(subjects=[], create=False) == []


def test_a_secret_password_is_never_printed() -> None:
    issues: list[ConfigIssue] = []
    config = build(NatsConfig, GOOD | {"user": "u", "password": "hunter2"}, "s", issues)
    assert config is not None and "hunter2" not in repr(config)


@pytest.mark.parametrize(
    ("pattern", "subject", "covered"),
    [
        ("sensors.>", "sensors.a.temp", True),
        ("sensors.>", "sensors.*.temp", True),
        ("sensors.>", "sensors", False),
        ("sensors.*", "sensors.a", True),
        ("sensors.*", "sensors.>", False),
        ("sensors.*", "sensors.a.b", False),
        ("sensors.a", "sensors.*", False),
        ("sensors.a", "sensors.a", True),
        (">", "anything.at.all", True),
    ],
)
def test_covers_applies_the_server_wildcard_rules(
    pattern: str, subject: str, covered: bool
) -> None:
    assert covers(pattern, subject) is covered


def test_subject_rules() -> None:
    assert subject_issue("sensors.*.temp") is None
    assert subject_issue("sensors.>") is None
    assert subject_issue(".a") is not None
    assert subject_issue("a b") is not None


def test_topic_pattern_takes_nats_wildcards() -> None:
    assert nats_pattern("plant.*.{sensor_id}.>") == "plant.+.{sensor_id}.#"
    assert nats_pattern("") == ""


def test_validate_exits_78_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ingestd.toml"
    path.write_text(
        '[[sources]]\ntype = "nats"\nstream = "S"\nsubjects = ["s.>"]\nbatch = 100\n'
        'max_ack_pending = 10\n\n[[sinks]]\ntype = "blackhole"\n'
    )
    assert main(["validate", "-c", str(path)]) == EX_CONFIG
    assert "sources[0].max_ack_pending: must be >= batch (100)" in capsys.readouterr().err
