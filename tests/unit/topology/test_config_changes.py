"""The reload audit trail: every changed key by its TOML path, old -> new, secrets masked."""

from __future__ import annotations

import json

from daemon.config import AppConfig, parse_config
from daemon.topology.changes import KeyChange, config_changes
from daemon.topology.reload import plan_reload

BEFORE = """
[daemon]
log_level = "info"
[[sources]]
type = "simulated"
sensors = 10
[[stages]]
type = "normalize"
window = 50
[[sinks]]
type = "postgres"
dsn = "postgresql://ingest:hunter2@127.0.0.1:5432/test"
spool_dir = "spool-pg"
"""


def parse(text: str) -> AppConfig:
    return parse_config(text)


def edited(*pairs: tuple[str, str]) -> AppConfig:
    text = BEFORE
    for old, new in pairs:
        assert old in text
        text = text.replace(old, new)
    return parse(text)


def test_nothing_changed_is_no_change() -> None:
    assert config_changes(parse(BEFORE), parse(BEFORE)) == []
    assert plan_reload(parse(BEFORE), parse(BEFORE)).keys == ()


def test_each_leaf_key_is_named_with_both_values() -> None:
    new = edited(
        ('log_level = "info"', 'log_level = "debug"\n[daemon.http]\nport = 9200'),
        ("window = 50", "window = 20"),
        ('spool_dir = "spool-pg"', 'spool_dir = "spool-pg"\nretry = { attempts = 7 }'),
    )
    assert config_changes(parse(BEFORE), new) == [
        KeyChange("daemon.log_level", "info", "debug"),
        KeyChange("daemon.http.port", 9108, 9200),
        KeyChange("stages[0].window", 50, 20),
        KeyChange("sinks[0].retry.attempts", 3, 7),
    ]
    plan = plan_reload(parse(BEFORE), new)
    assert [c.key for c in plan.keys] == [
        "daemon.log_level",
        "daemon.http.port",
        "stages[0].window",
        "sinks[0].retry.attempts",
    ]
    assert plan.changed == ("daemon", "stages[0]", "sinks[0]") and plan.rebuild


def test_a_rotated_secret_is_a_change_whose_values_are_masked() -> None:
    new = edited(("hunter2", "swordfish"))
    changes = config_changes(parse(BEFORE), new)
    assert changes == [KeyChange("sinks[0].dsn", "***", "***")]
    assert "hunter2" not in repr(changes) and "swordfish" not in repr(changes)


def test_an_added_removed_or_retyped_component_is_one_change_with_its_whole_table() -> None:
    added = edited(("window = 50", 'window = 50\n[[stages]]\ntype = "moving_average"'))
    (change,) = config_changes(parse(BEFORE), added)
    assert change == KeyChange("stages[1]", None, {"type": "moving_average", "window": 10})
    (change,) = config_changes(added, parse(BEFORE))
    assert change == KeyChange("stages[1]", {"type": "moving_average", "window": 10}, None)
    retyped = edited(('type = "normalize"\nwindow = 50', 'type = "moving_average"\nwindow = 5'))
    (change,) = config_changes(parse(BEFORE), retyped)
    assert change.key == "stages[0]"
    assert change.old == {"type": "normalize", "window": 50}
    assert change.new == {"type": "moving_average", "window": 5}
    sink = edited(('type = "postgres"', 'type = "postgres"\npool_size = 3'))
    removed_sink = parse(BEFORE.replace("[[sinks]]", '[[sinks]]\ntype = "blackhole"\n[[sinks]]'))
    (change,) = [c for c in config_changes(sink, removed_sink) if c.key == "sinks[1]"]
    assert change.new is not None and change.new["dsn"] == "***"  # masked in a whole table too
    assert change.new["pool_size"] == 2


def test_every_change_is_json_as_a_log_line_holds_it() -> None:
    new = edited(
        ("window = 50", "window = 20\n[[stages]]\ntype = 'threshold_filter'\nmin = -inf\nmax = 1")
    )
    changes = config_changes(parse(BEFORE), new)
    text = json.dumps([c.__dict__ for c in changes], allow_nan=False)
    assert '"min": "-inf"' in text
