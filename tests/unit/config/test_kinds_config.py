"""`kinds` on every sink: what it takes, checked against what its class can store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon.batch import Batch
from daemon.cli import EX_CONFIG, main
from daemon.components import Sink
from daemon.config import ConfigError, parse_config


@dataclass(frozen=True)
class ReadingsOnlyConfig:
    pass


class ReadingsOnly(Sink[ReadingsOnlyConfig], name="test_readings_only"):
    """A sink that can store readings and nothing else (a table of readings, say)."""

    stores = frozenset({"reading"})

    async def write(self, batch: Batch) -> None:
        pass


def config(sink: str) -> str:
    """One source, one sink whose keys are `sink` (loading creates nothing)."""
    return f"""
[[sources]]
type = "simulated"
sensors = 2

[[sinks]]
{sink}
"""


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return [str(issue) for issue in info.value.issues]


JSONL = 'type = "jsonl"\npath = "out.jsonl"'
READINGS_ONLY = 'type = "test_readings_only"'


def test_absent_kinds_are_all_the_sink_can_store() -> None:
    (jsonl,) = parse_config(config(JSONL)).sinks
    assert jsonl.resilience is not None
    assert jsonl.resilience.kinds == ("reading", "features", "alert")
    (readings,) = parse_config(config(READINGS_ONLY)).sinks
    assert readings.resilience is not None
    assert readings.resilience.kinds == ("reading",)


def test_listed_kinds_are_kept_in_order() -> None:
    (sink,) = parse_config(config(JSONL + '\nkinds = ["alert", "reading"]')).sinks
    assert sink.resilience is not None
    assert sink.resilience.kinds == ("alert", "reading")


def test_an_unknown_kind_names_the_key_and_the_known_kinds() -> None:
    assert errors(config(JSONL + '\nkinds = ["reading", "alerts"]')) == [
        "sinks[0].kinds: unknown kind 'alerts' (known: reading, features, alert)"
    ]


def test_an_empty_list_is_an_error() -> None:
    assert errors(config(JSONL + "\nkinds = []")) == [
        "sinks[0].kinds: must not be empty (known: reading, features, alert)"
    ]


def test_a_kind_twice_and_a_wrong_type_are_errors() -> None:
    assert errors(config(JSONL + '\nkinds = ["alert", "alert"]')) == [
        "sinks[0].kinds: must not name a kind twice"
    ]
    (issue,) = errors(config(JSONL + '\nkinds = "alert"'))
    assert issue.startswith("sinks[0].kinds: ")


def test_a_kind_the_sink_cannot_store_is_an_error() -> None:
    assert errors(config(READINGS_ONLY + '\nkinds = ["reading", "alert", "features"]')) == [
        "sinks[0].kinds: a test_readings_only sink cannot store 'alert', 'features'"
        " (it stores: reading)"
    ]


def test_validate_exits_78_on_a_bad_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(config(JSONL + '\nkinds = ["alarm"]'))
    assert main(["validate", "-c", str(path)]) == EX_CONFIG
    assert "sinks[0].kinds: unknown kind 'alarm'" in capsys.readouterr().err
