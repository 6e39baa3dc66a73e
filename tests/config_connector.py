"""A test connector whose config has every field type, registered only for the tests that ask.

The config classes live at module level so `get_type_hints` resolves them. In-process tests use
`registered_connector()`, which puts the registry back when the block ends, so no other test
(nor its `ingestd stages`) sees the connector. A subprocess gets it the way a real plugin is
found: `plugin_path()` writes an `ingestd.plugins` entry point whose module calls `register()`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

import pytest

from daemon.config import Duration, Range, Secret
from daemon.registry import REGISTRY

SOURCE = "test_connector"
SINK = "test_connector_sink"
DEV_PASSWORD = Secret("changeme")  # a name, not a call, as a dataclass default (RUF009)


@dataclass(frozen=True)
class Tls:
    ca_file: Annotated[str, "CA bundle the server certificate is checked against"] = ""
    verify: Annotated[bool, "check the server certificate"] = True
    key_password: Annotated[Secret | None, "password of the client key"] = None


@dataclass(frozen=True)
class Route:
    topic: Annotated[str, "topic filter"]
    qos: Annotated[int, Range(ge=0, le=2), "MQTT QoS"] = 0
    sensor: Annotated[str | None, "sensor id; default: the topic"] = None


@dataclass(frozen=True)
class ConnectorConfig:
    url: Annotated[str, "server URL"]
    topics: Annotated[list[str], "subjects subscribed"] = field(default_factory=list)
    ports: tuple[Annotated[int, Range(ge=1, le=65535)], ...] = (1883,)
    mapping: Annotated[dict[str, float], "scale per topic"] = field(default_factory=dict)
    client_id: str | None = None
    max_inflight: Annotated[int | None, Range(ge=1), "unacknowledged messages"] = None
    port_or_name: int | str = 0
    mode: Literal["fast", "safe"] = "safe"
    keepalive: Annotated[Duration, Range(gt=0), "ping interval"] = 30.0
    backoff: list[Annotated[Duration, Range(ge=0)]] = field(default_factory=list)
    reconnect: Duration | None = None
    password: Annotated[Secret, "a dev broker's default; never printed"] = DEV_PASSWORD
    tls: Tls = field(default_factory=Tls)
    routes: tuple[Route, ...] = ()


class _Source(Protocol):
    def stream(self) -> Any: ...


class _Sink(Protocol):
    def write(self, batch: Any) -> Any: ...

    def flush(self) -> Any: ...


class ConnectorSource:
    """A source configured like MQTT or NATS (the tests only validate it)."""

    Config = ConnectorConfig

    def stream(self) -> Any:
        raise NotImplementedError


class ConnectorSink:
    """A sink configured like PostgreSQL (the tests only validate it)."""

    Config = ConnectorConfig

    def write(self, batch: Any) -> Any:
        raise NotImplementedError

    def flush(self) -> Any:
        raise NotImplementedError


def register() -> None:
    """Register the connector for good: what the plugin module of a subprocess does."""
    REGISTRY.add("source", SOURCE, ConnectorSource, _Source)
    REGISTRY.add("sink", SINK, ConnectorSink, _Sink)


@contextmanager
def registered_connector() -> Iterator[None]:
    """The connector registered as a source and a sink until the block ends."""
    REGISTRY.load()  # built-ins first, or they would be imported into the copy and lost
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(REGISTRY, "_entries", dict(REGISTRY._entries))
        register()
        yield


def plugin_path(directory: Path) -> str:
    """A directory that, on PYTHONPATH, makes `ingestd` load the connector as a plugin."""
    (directory / "ingestd_test_connector.py").write_text(
        "from tests.config_connector import register\n\nregister()\n"
    )
    dist = directory / "ingestd_test_connector-0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ingestd-test-connector\n")
    (dist / "entry_points.txt").write_text(
        "[ingestd.plugins]\nconnector = ingestd_test_connector\n"
    )
    return str(directory)
