"""Event names are an interface: defined once, unique, snake_case, the contract's all present."""

from __future__ import annotations

import re

from daemon.observability import events

CONTRACT = {
    "daemon_started",
    "pipeline_health",
    "breaker_state_changed",
    "spool_replayed",
    "spool_record_corrupt",
    "sensor_down",
    "sensor_recovered",
    "config_reloaded",
    "config_reload_failed",
    "shutdown_started",
    "shutdown_complete",
    "feature_worker_crashed",
    "sink_rejected",
}


def test_every_contract_event_is_defined() -> None:
    assert CONTRACT <= events.ALL


def test_names_are_unique_snake_case_and_match_their_constant() -> None:
    constants = {k: v for k, v in vars(events).items() if k.isupper() and isinstance(v, str)}
    assert len(set(constants.values())) == len(constants)
    assert set(constants.values()) == events.ALL
    for name, value in constants.items():
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", value), value
        assert name.lower() == value
