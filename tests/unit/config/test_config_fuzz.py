"""Whatever a config holds, loading it gives a valid config or a ConfigError, never a traceback."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.config import AppConfig, ConfigError, parse_config
from daemon.config.fields import ConfigIssue, build
from tests.config_connector import SINK, SOURCE, ConnectorConfig, Route, Tls, registered_connector

FIELD_NAMES = sorted(
    {f.name for cls in (ConnectorConfig, Tls, Route) for f in dataclasses.fields(cls)}
    | {"env", "file", "type", "retry", "breaker", "attempts"}
)

scalars = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["5s", "250ms", "1.5m", "2h", "-1s", "abc", "safe", "INGESTD_NOT_SET"])
)
keys = st.sampled_from(FIELD_NAMES) | st.text(max_size=8)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)
tables = st.dictionaries(keys.filter(lambda k: k != "type"), values, max_size=8)


@settings(max_examples=200, deadline=None)
@given(tables)
def test_build_gives_an_object_or_issues(table: dict[str, Any]) -> None:
    issues: list[ConfigIssue] = []
    obj = build(ConnectorConfig, table, "sources[0]", issues)
    assert (obj is None) == bool(issues)
    assert obj is None or isinstance(obj, ConnectorConfig)
    for issue in issues:
        assert str(issue).startswith("sources[0]")
        str(issue).encode("utf-8")  # printable to a UTF-8 stderr, surrogates escaped


def toml_value(value: Any) -> str:
    """`value` as a TOML inline value (a tiny writer: the stdlib reads TOML but cannot write)."""
    if isinstance(value, bool | int):
        return str(value).lower()  # true, false, 42
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)  # nan, inf, -inf
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_string(text: str) -> str:
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif c == "\t" or (c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF):
            out.append(c)
        else:
            out.append(f"\\U{ord(c):08x}" if ord(c) > 0xFFFF else f"\\u{ord(c):04x}")
    return '"' + "".join(out) + '"'


def toml_document(source: dict[str, Any], sink: dict[str, Any]) -> str:
    lines = ["[[sources]]", f'type = "{SOURCE}"']
    lines += [f"{toml_string(k)} = {toml_value(v)}" for k, v in source.items()]
    lines += ["[[sinks]]", f'type = "{SINK}"']
    lines += [f"{toml_string(k)} = {toml_value(v)}" for k, v in sink.items()]
    return "\n".join(lines) + "\n"


def assert_loads_or_config_error(text: str) -> None:
    try:
        config = parse_config(text)
    except ConfigError as exc:
        assert exc.issues
        for issue in exc.issues:
            str(issue).encode("utf-8")
    else:
        assert isinstance(config, AppConfig)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables, tables)
def test_parse_config_raises_only_config_error(
    source: dict[str, Any], sink: dict[str, Any]
) -> None:
    text = toml_document(source, sink)
    with registered_connector():
        assert_loads_or_config_error(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gives_a_config_or_config_error(text: str) -> None:
    with registered_connector():
        assert_loads_or_config_error(text)
        assert_loads_or_config_error(f'[[sources]]\ntype = "{SOURCE}"\n{text}')


def test_the_writer_round_trips_through_tomllib() -> None:
    """The fuzzing above is only worth what this writer produces: real TOML of those values."""
    value = {"a b": [1, 2.5, 'x\u0001"y', {"k": True}], "c": {"d": float("inf")}}
    assert tomllib.loads(f"v = {toml_value(value)}") == {"v": value}


def test_the_edges_of_the_toml_parser_are_config_errors() -> None:
    texts = (
        "x = " + "[" * 5000 + "]" * 5000,
        "x = " + "1" * 5000,
        "[daemon]\n" + '"\\ud800" = 1',
        f'[[sources]]\ntype = "{SOURCE}"\nurl = "u"\nmapping = {{ "\\udfff" = "x" }}',
    )
    with registered_connector():
        for text in texts:
            assert_loads_or_config_error(text)
