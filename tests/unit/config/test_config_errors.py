"""Every kind of config error: named by its key path, with the reason; valid configs load."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.cli import EX_CONFIG, main
from daemon.config import ConfigError, load_config, parse_config

GOOD = """
[daemon]
health_interval_s = 1

[[sources]]
type = "simulated"
sensors = 3
rate_hz = 10

[[stages]]
type = "threshold_filter"
min = 10.0
max = 100.0

[[stages]]
type = "normalize"
window = 50

[[sinks]]
type = "jsonl"
path = "out.jsonl"
[sinks.breaker]
reset_timeout_s = 5.0
"""


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return [str(i) for i in info.value.issues]


def test_good_config_loads_with_defaults_filled_in() -> None:
    cfg = parse_config(GOOD)
    assert cfg.daemon.health_interval_s == 1.0
    assert cfg.daemon.shutdown_timeout_s == 20.0
    assert [s.name for s in cfg.stages] == ["threshold_filter", "normalize"]
    sink = cfg.sinks[0]
    assert sink.resilience is not None
    assert sink.resilience.spool_dir == "data/spool/jsonl-0"
    assert sink.resilience.breaker.reset_timeout_s == 5.0
    assert sink.resilience.retry.attempts == 3


def test_out_of_range_value_names_key_and_bound() -> None:
    assert errors(GOOD.replace("window = 50", "window = 0")) == [
        "stages[1].window: must be >= 1, got 0"
    ]


def test_nested_table_value_out_of_range() -> None:
    assert errors(GOOD.replace("reset_timeout_s = 5.0", "reset_timeout_s = -1")) == [
        "sinks[0].breaker.reset_timeout_s: must be > 0, got -1"
    ]


def test_inverted_bounds() -> None:
    (msg,) = errors(GOOD.replace("min = 10.0", "min = 500.0"))
    assert msg.startswith("stages[0].min: must be < max")


def test_unknown_component_type_lists_the_known_ones() -> None:
    (msg,) = errors(GOOD.replace('type = "normalize"', 'type = "no_such_stage"'))
    assert msg.startswith("stages[1].type: unknown stage type 'no_such_stage'")
    assert "moving_average" in msg


def test_wrong_type() -> None:
    (msg,) = errors(GOOD.replace("sensors = 3", 'sensors = "many"'))
    assert msg == "sources[0].sensors: must be an integer, got str 'many'"


def test_bool_is_not_a_number() -> None:
    (msg,) = errors(GOOD.replace("rate_hz = 10", "rate_hz = true"))
    assert msg.startswith("sources[0].rate_hz: must be a number")


def test_unknown_keys_everywhere() -> None:
    text = GOOD.replace("health_interval_s = 1", "health_interval_s = 1\ncolour = 'red'")
    text = text.replace("window = 50", "window = 50\nwindw = 3")
    text = text.replace("reset_timeout_s = 5.0", "reset_timeout_s = 5.0\nthreshold = 2")
    msgs = errors(text)
    assert [m.split(":")[0] for m in msgs] == [
        "daemon.colour",
        "stages[1].windw",
        "sinks[0].breaker.threshold",
    ]
    assert all("unknown key" in m for m in msgs)


def test_unknown_section() -> None:
    assert errors(GOOD + "\n[extras]\nx = 1\n")[0].startswith("extras: unknown section")


def test_enum_value() -> None:
    (msg,) = errors(GOOD.replace("health_interval_s = 1", 'log_level = "loud"'))
    assert msg.startswith("daemon.log_level: must be one of 'debug', 'info'")


def test_missing_required_key_and_sections() -> None:
    assert "sinks[0].path: is required" in errors(GOOD.replace('path = "out.jsonl"', ""))
    no_sinks = GOOD.split("[[sinks]]", maxsplit=1)[0]
    assert errors(no_sinks) == ["sinks: at least one [[sinks]] is required"]


def test_every_error_is_reported_at_once() -> None:
    text = GOOD.replace("window = 50", "window = 0").replace("sensors = 3", "sensors = -3")
    assert len(errors(text)) == 2


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    assert "invalid TOML" in errors("[daemon\n")[0]
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.toml")
    assert "no such file" in str(info.value)


def test_unreadable_file(tmp_path: Path) -> None:
    directory = tmp_path / "dir.toml"
    directory.mkdir()
    with pytest.raises(ConfigError) as info:
        load_config(directory)
    assert "cannot read" in str(info.value)


@pytest.mark.parametrize("command", ["validate", "run"])
def test_cli_exits_78_with_the_key_and_writes_nothing(
    tmp_path: Path,
    command: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace("window = 50", "window = 0"))
    assert main([command, "-c", str(bad)]) == EX_CONFIG
    err = capsys.readouterr().err
    assert "stages[1].window: must be >= 1, got 0" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


def test_validate_accepts_the_embedded_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == 0
    assert capsys.readouterr().out.startswith("ok: ")
