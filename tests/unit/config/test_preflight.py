"""What only the machine can say, said by `validate` and `run` alike: the HTTP port in use."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.cli import EX_CONFIG, main
from daemon.config import parse_config
from daemon.config.preflight import preflight

CONFIG = """
[daemon]
dead_letter = "{tmp}/dead-letter.jsonl"
state_dir = "{tmp}/state"
[daemon.http]
enabled = {enabled}
host = "{host}"
port = {port}

[[sources]]
type = "simulated"
sensors = 2
max_readings = 5

[[sinks]]
type = "jsonl"
path = "{tmp}/out.jsonl"
spool_dir = "{tmp}/spool"
"""


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another process (here: this one) listens on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def config_text(tmp: Path, port: int, *, enabled: bool = True, host: str = "127.0.0.1") -> str:
    return CONFIG.format(tmp=tmp, port=port, enabled=str(enabled).lower(), host=host)


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_port_in_use_exits_78_naming_the_key(
    tmp_path: Path, taken_port: int, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ingestd.toml"
    path.write_text(config_text(tmp_path, taken_port))
    assert main([command, "-c", str(path)]) == EX_CONFIG
    err = capsys.readouterr().err
    assert f"daemon.http.port: 127.0.0.1:{taken_port} is in use" in err
    assert not (tmp_path / "out.jsonl").exists()  # nothing started


def test_a_free_port_a_disabled_server_and_port_0_pass(tmp_path: Path, taken_port: int) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    assert preflight(parse_config(config_text(tmp_path, free))) == []
    assert preflight(parse_config(config_text(tmp_path, taken_port, enabled=False))) == []
    assert preflight(parse_config(config_text(tmp_path, 0))) == []


def test_a_host_that_is_not_ours_is_named(tmp_path: Path) -> None:
    [issue] = preflight(parse_config(config_text(tmp_path, 9108, host="192.0.2.1")))
    assert issue.path == "daemon.http.host"


def test_a_reload_checks_only_what_it_changes(tmp_path: Path, taken_port: int) -> None:
    """On SIGHUP the daemon holds its own port: unchanged, it is not probed again."""
    running = parse_config(config_text(tmp_path, taken_port))
    assert preflight(running, previous=running) == []
    before = parse_config(config_text(tmp_path, 0))
    [issue] = preflight(running, previous=before)  # moved onto a port someone else has
    assert issue.path == "daemon.http.port"
