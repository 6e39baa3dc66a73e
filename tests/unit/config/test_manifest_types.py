"""`ingestd stages` names every field type readably, masks secrets, and stays valid JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from daemon.cli import main
from daemon.manifest import manifest
from tests.config_connector import SINK, SOURCE, registered_connector


@pytest.fixture(autouse=True)
def connector() -> Iterator[None]:
    with registered_connector():
        yield


def params() -> dict[str, dict[str, Any]]:
    (entry,) = [e for e in manifest() if e["name"] == SOURCE]
    return {p["name"]: p for p in entry["params"]}


def test_type_names() -> None:
    assert {name: p["type"] for name, p in params().items()} == {
        "url": "str",
        "topics": "list[str]",
        "ports": "tuple[int, ...]",
        "mapping": "dict[str, float]",
        "client_id": "str | None",
        "max_inflight": "int | None",
        "port_or_name": "int | str",
        "mode": "'fast'|'safe'",
        "keepalive": "duration",
        "backoff": "list[duration]",
        "reconnect": "duration | None",
        "password": "secret",
        "tls": "table",
        "routes": "tuple[table, ...]",
    }


def test_defaults_bounds_and_required() -> None:
    p = params()
    assert p["url"]["required"] is True
    assert p["client_id"]["required"] is False
    assert p["client_id"]["default"] is None
    assert p["ports"]["default"] == [1883]
    assert p["ports"]["bounds"] == "each >= 1, <= 65535"
    assert p["max_inflight"]["bounds"] == ">= 1"
    assert p["keepalive"]["default"] == 30.0
    assert p["password"]["default"] == "***"
    assert p["tls"]["default"] == {"ca_file": "", "verify": True, "key_password": None}
    assert p["routes"]["default"] == []


def test_stages_command_json_is_valid_and_masks_the_secret(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["stages", "--json"]) == 0
    out = capsys.readouterr().out
    entries = json.loads(out)
    assert {(e["kind"], e["name"]) for e in entries} >= {("source", SOURCE), ("sink", SINK)}
    assert "changeme" not in out
    assert main(["stages"]) == 0
    text = capsys.readouterr().out
    assert "changeme" not in text
    assert "    password: secret = '***'" in text
    assert "    topics: list[str] = []  # subjects subscribed" in text
    assert "    client_id: str | None = None" in text
    assert "    ports: tuple[int, ...] = [1883] [each >= 1, <= 65535]" in text
