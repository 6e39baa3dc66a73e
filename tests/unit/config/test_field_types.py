"""Each field type's coercion and the exact error it gives, with the full key path."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest

from daemon.config import Duration, Range, Secret
from daemon.config.fields import ConfigIssue, build

DURATION_REASON = "must be a duration (a number of seconds or '250ms', '5s', '2m', '1h')"


@dataclass(frozen=True)
class Route:
    topic: str
    qos: Annotated[int, Range(ge=0, le=2)] = 0


@dataclass(frozen=True)
class Tls:
    ca_file: str = ""


@dataclass(frozen=True)
class Fields:
    topics: list[str] = field(default_factory=list)
    ports: tuple[Annotated[int, Range(ge=1)], ...] = ()
    routes: list[Route] = field(default_factory=list)
    mapping: dict[str, float] = field(default_factory=dict)
    per_topic: dict[str, Route] = field(default_factory=dict)
    client_id: str | None = None
    inflight: Annotated[int | None, Range(ge=1)] = None
    port_or_name: int | str = 0
    auto_or_rate: float | Literal["auto"] = "auto"
    ids_or_name: list[int] | str = ""
    mode: Literal["fast", "safe"] = "safe"
    keepalive: Annotated[Duration, Range(gt=0)] = 30.0
    backoff: list[Duration] = field(default_factory=list)
    reconnect: Duration | None = None
    password: Secret | None = None
    tls: Tls = field(default_factory=Tls)
    rate: Annotated[float, Range(gt=0)] = 1.0


@dataclass(frozen=True)
class NoDefault:
    name: str | None


def make(table: dict[str, Any], cls: type[Any] = Fields) -> tuple[Any, list[str]]:
    issues: list[ConfigIssue] = []
    obj = build(cls, table, "sources[0]", issues)
    assert (obj is None) == bool(issues)
    return obj, [str(i) for i in issues]


def errors(table: dict[str, Any]) -> list[str]:
    return make(table)[1]


def value(key: str, raw: Any) -> Any:
    obj, issues = make({key: raw})
    assert issues == []
    return getattr(obj, key)


# -- lists and tuples -------------------------------------------------------------------------


def test_list_of_strings() -> None:
    assert value("topics", ["a", "b"]) == ["a", "b"]
    assert value("topics", []) == []
    assert errors({"topics": ["a", "b", 5]}) == [
        "sources[0].topics[2]: must be a string, got int 5"
    ]
    assert errors({"topics": "a"}) == ["sources[0].topics: must be a list, got str 'a'"]


def test_every_bad_item_is_reported() -> None:
    assert errors({"topics": [1, "ok", [2]]}) == [
        "sources[0].topics[0]: must be a string, got int 1",
        "sources[0].topics[2]: must be a string, got list [2]",
    ]


def test_tuple_is_a_tuple_and_keeps_the_config_hashable() -> None:
    obj, _ = make({"ports": [80, 443]})
    assert obj.ports == (80, 443)
    assert isinstance(obj.ports, tuple)
    assert hash(Route("t")) == hash(Route("t"))


def test_range_bounds_each_item() -> None:
    assert errors({"ports": [80, 0]}) == ["sources[0].ports[1]: must be >= 1, got 0"]


def test_list_of_tables() -> None:
    routes = value("routes", [{"topic": "a"}, {"topic": "b", "qos": 2}])
    assert routes == [Route("a"), Route("b", 2)]
    assert errors({"routes": [{"topic": "a", "qso": 1}, {"qos": 3}, "x"]}) == [
        "sources[0].routes[0].qso: unknown key (known: qos, topic)",
        "sources[0].routes[1].topic: is required",
        "sources[0].routes[1].qos: must be <= 2, got 3",
        "sources[0].routes[2]: must be a table, got str",
    ]


# -- dicts -------------------------------------------------------------------------------------


def test_dict_of_numbers() -> None:
    assert value("mapping", {"foo": 1, "bar": 2.5}) == {"foo": 1.0, "bar": 2.5}
    assert errors({"mapping": {"foo": "x"}}) == [
        "sources[0].mapping.foo: must be a number, got str 'x'"
    ]
    assert errors({"mapping": [1]}) == ["sources[0].mapping: must be a table, got list [1]"]


def test_dict_keys_that_are_not_bare_are_quoted_and_escaped() -> None:
    assert errors({"mapping": {"a.b": "x", "\ud800": "y"}}) == [
        "sources[0].mapping.\"a.b\": must be a number, got str 'x'",
        "sources[0].mapping.\"\\ud800\": must be a number, got str 'y'",
    ]


def test_dict_of_tables() -> None:
    assert value("per_topic", {"t": {"topic": "x"}}) == {"t": Route("x")}
    assert errors({"per_topic": {"t": {"topic": "x", "qos": -1}}}) == [
        "sources[0].per_topic.t.qos: must be >= 0, got -1"
    ]


# -- nested tables -----------------------------------------------------------------------------


def test_nested_table() -> None:
    assert value("tls", {"ca_file": "/ca.pem"}) == Tls("/ca.pem")
    assert errors({"tls": {"ca_file": 1, "verify": True}}) == [
        "sources[0].tls.verify: unknown key (known: ca_file)",
        "sources[0].tls.ca_file: must be a string, got int 1",
    ]
    assert errors({"tls": "yes"}) == ["sources[0].tls: must be a table, got str"]


# -- optionals and unions ----------------------------------------------------------------------


def test_optional_is_none_when_absent_and_a_value_when_present() -> None:
    obj, _ = make({})
    assert obj.client_id is None
    assert value("client_id", "c1") == "c1"
    assert errors({"client_id": 1}) == ["sources[0].client_id: must be a string, got int 1"]


def test_optional_without_a_default_is_none_when_absent() -> None:
    assert make({}, NoDefault)[0] == NoDefault(None)


def test_range_reaches_through_an_optional() -> None:
    assert value("inflight", 5) == 5
    assert errors({"inflight": 0}) == ["sources[0].inflight: must be >= 1, got 0"]


def test_union_tries_members_in_order() -> None:
    assert value("port_or_name", 5) == 5
    assert value("port_or_name", "broker") == "broker"
    assert errors({"port_or_name": [1]}) == [
        "sources[0].port_or_name: must be an integer or a string, got list [1]"
    ]
    assert errors({"port_or_name": 1.5}) == [
        "sources[0].port_or_name: must be an integer or a string, got float 1.5"
    ]


def test_union_reports_the_member_whose_shape_the_value_has() -> None:
    assert value("auto_or_rate", 2) == 2.0
    assert errors({"auto_or_rate": "fast"}) == [
        "sources[0].auto_or_rate: must be one of 'auto', got 'fast'"
    ]
    assert errors({"ids_or_name": [1, "x"]}) == [
        "sources[0].ids_or_name[1]: must be an integer, got str 'x'"
    ]
    assert errors({"ids_or_name": {}}) == [
        "sources[0].ids_or_name: must be a list or a string, got an empty table"
    ]


def test_literal() -> None:
    assert value("mode", "fast") == "fast"
    assert errors({"mode": "slow"}) == [
        "sources[0].mode: must be one of 'fast', 'safe', got 'slow'"
    ]
    assert errors({"mode": ["fast"]}) == [
        "sources[0].mode: must be one of 'fast', 'safe', got ['fast']"
    ]


# -- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        (5, 5.0),
        (0.25, 0.25),
        ("250ms", 0.25),
        ("5s", 5.0),
        ("1.5m", 90.0),
        ("2h", 7200.0),
        (" 10 s ", 10.0),
        (".5s", 0.5),
    ],
)
def test_duration(raw: Any, seconds: float) -> None:
    got = value("keepalive", raw)
    assert got == seconds
    assert type(got) is float


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("abc", "str 'abc'"),
        ("5", "str '5'"),
        ("5 sec", "str '5 sec'"),
        (True, "bool True"),
        ([1], "list [1]"),
        (float("nan"), "float nan"),
    ],
)
def test_bad_duration(raw: Any, shown: str) -> None:
    assert errors({"keepalive": raw}) == [f"sources[0].keepalive: {DURATION_REASON}, got {shown}"]


def test_range_bounds_the_seconds_of_a_duration() -> None:
    assert errors({"keepalive": "0s"}) == ["sources[0].keepalive: must be > 0, got '0s'"]
    assert errors({"keepalive": -1}) == ["sources[0].keepalive: must be > 0, got -1"]


def test_durations_in_lists_and_optionals() -> None:
    assert value("backoff", [1, "500ms", "1m"]) == [1.0, 0.5, 60.0]
    assert errors({"backoff": ["1s", "x"]}) == [
        f"sources[0].backoff[1]: {DURATION_REASON}, got str 'x'"
    ]
    assert value("reconnect", "2s") == 2.0
    assert make({})[0].reconnect is None


# -- secrets -----------------------------------------------------------------------------------


def test_secret_from_a_string_is_masked() -> None:
    secret = value("password", "hunter2")
    assert secret.reveal() == "hunter2"
    assert repr(secret) == "Secret('***')"
    assert str(secret) == "***"
    assert f"{secret}" == "***"
    obj, _ = make({"password": "hunter2"})
    assert "hunter2" not in repr(obj)


def test_secret_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGESTD_TEST_PW", "s3cret")
    assert value("password", {"env": "INGESTD_TEST_PW"}).reveal() == "s3cret"
    monkeypatch.delenv("INGESTD_TEST_PW")
    assert errors({"password": {"env": "INGESTD_TEST_PW"}}) == [
        "sources[0].password: environment variable INGESTD_TEST_PW is not set"
    ]


def test_secret_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text("s3cret\n")
    assert value("password", {"file": str(path)}).reveal() == "s3cret"
    (missing,) = errors({"password": {"file": str(tmp_path / "nope")}})
    assert missing.startswith("sources[0].password: cannot read secret file ")
    assert missing.endswith(": No such file or directory")
    (directory,) = errors({"password": {"file": str(tmp_path)}})
    assert directory.endswith(": Is a directory")


def test_secret_file_that_is_too_large_or_not_text(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * (64 * 1024 + 1))
    assert errors({"password": {"file": str(big)}})[0].endswith("is larger than 64 KiB")
    binary = tmp_path / "bin"
    binary.write_bytes(b"\xff\xfe")
    assert errors({"password": {"file": str(binary)}})[0].endswith("is not UTF-8 text")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"env": "A", "file": "/b"},
            ["sources[0].password: must have exactly one of env or file, got env and file"],
        ),
        ({}, ["sources[0].password: must have exactly one of env or file, got neither"]),
        (
            {"env": "A", "value": "x"},
            ["sources[0].password.value: unknown key (known: env, file)"],
        ),
        ({"env": 5}, ["sources[0].password.env: must be a string, got int 5"]),
        (
            12345,
            [
                "sources[0].password: must be a secret (a string, "
                '{ env = "NAME" } or { file = "/path" }), got int'
            ],
        ),
    ],
)
def test_bad_secret_table(raw: Any, expected: list[str]) -> None:
    assert errors({"password": raw}) == expected


def test_a_wrong_secret_is_never_echoed() -> None:
    assert "12345" not in errors({"password": 12345})[0]
    assert "hunter2" not in " ".join(errors({"password": {"value": "hunter2"}}))


def test_secret_equality_hash_pickle_and_immutability() -> None:
    a, b, c = Secret("x"), Secret("x"), Secret("y")
    assert a == b
    assert a != c
    assert hash(a) == hash(b)
    assert a != "x"
    assert pickle.loads(pickle.dumps(a)) == a
    with pytest.raises(AttributeError):
        a._value = "z"


def test_a_rotated_secret_is_a_changed_config() -> None:
    assert make({"password": "old"})[0] != make({"password": "new"})[0]
    assert make({"password": "same"})[0] == make({"password": "same"})[0]


# -- numbers, and what every message keeps -----------------------------------------------------


def test_existing_messages_keep_their_wording() -> None:
    assert errors({"rate": "many"}) == ["sources[0].rate: must be a number, got str 'many'"]
    assert errors({"rate": 0}) == ["sources[0].rate: must be > 0, got 0"]
    assert errors({"rate": True}) == ["sources[0].rate: must be a number, got bool True"]
    assert (
        errors({"colour": 1})[0]
        == "sources[0].colour: unknown key (known: "
        + ", ".join(sorted(Fields.__dataclass_fields__))
        + ")"
    )


def test_nan_is_out_of_every_range() -> None:
    assert errors({"rate": float("nan")}) == ["sources[0].rate: must be a number, not nan, got nan"]


def test_an_integer_too_large_for_a_float() -> None:
    (msg,) = errors({"rate": 10**400})
    assert msg.startswith("sources[0].rate: is too large for a number, got int 1000")
    assert len(msg) < 150


def test_a_huge_value_is_shown_shortened() -> None:
    (msg,) = errors({"port_or_name": [[[[list(range(10_000))]]]]})
    assert len(msg) < 150
