"""Forty malformed configs: `ingestd validate` exits 78 and names every bad key, no traceback.

The connector (`tests.config_connector`) has a field of every type; it is registered around each
test in-process, and as an `ingestd.plugins` entry point for the subprocess runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.cli import EX_CONFIG, main
from tests.config_connector import plugin_path, registered_connector

REPO = Path(__file__).resolve().parents[3]
UNSET = "INGESTD_TEST_UNSET_SECRET"
DURATION = "must be a duration (a number of seconds or '250ms', '5s', '2m', '1h')"

SOURCE = '[[sources]]\ntype = "test_connector"\nurl = "mqtt://broker:1883"\n'
SIMULATED = '[[sources]]\ntype = "simulated"\nsensors = 1\nrate_hz = 1\n'
CONSOLE = '[[sinks]]\ntype = "console"\n'
PG = '[[sinks]]\ntype = "test_connector_sink"\nurl = "postgresql://db/ingest"\n'


def src(body: str) -> str:
    return SOURCE + body + "\n" + CONSOLE


def sink(body: str) -> str:
    return SIMULATED + PG + body + "\n"


Expected = list[tuple[str, str]]
CASES: list[tuple[str, str, Expected]] = [
    # -- lists of scalars
    ("list_item_type", src('topics = ["a", "b", 3]'), [("sources[0].topics[2]", "got int 3")]),
    ("list_not_a_list", src('topics = "a"'), [("sources[0].topics", "must be a list, got str")]),
    ("list_nested", src('topics = [["a"]]'), [("sources[0].topics[0]", "must be a string")]),
    (
        "list_items_out_of_range",
        src("ports = [1883, 0, 70000]"),
        [("sources[0].ports[1]", "must be >= 1, got 0"), ("sources[0].ports[2]", "<= 65535")],
    ),
    ("tuple_item_type", src('ports = ["1883"]'), [("sources[0].ports[0]", "must be an integer")]),
    (
        "list_of_durations",
        src('backoff = ["1s", "soon", -1]'),
        [("sources[0].backoff[1]", DURATION), ("sources[0].backoff[2]", "must be >= 0")],
    ),
    # -- lists of tables
    (
        "route_missing_key",
        src("[[sources.routes]]\nqos = 1"),
        [("sources[0].routes[0].topic", "is required")],
    ),
    (
        "route_out_of_range",
        src('[[sources.routes]]\ntopic = "a"\n[[sources.routes]]\ntopic = "b"\nqos = 3'),
        [("sources[0].routes[1].qos", "must be <= 2, got 3")],
    ),
    (
        "route_unknown_key",
        src('[[sources.routes]]\ntopic = "a"\nqso = 1'),
        [("sources[0].routes[0].qso", "unknown key (known: qos, sensor, topic)")],
    ),
    (
        "routes_not_tables",
        src('routes = [1, "x"]'),
        [("sources[0].routes[0]", "must be a table"), ("sources[0].routes[1]", "must be a table")],
    ),
    (
        "route_optional_field",
        src('routes = [{ topic = "a", sensor = 5 }]'),
        [("sources[0].routes[0].sensor", "must be a string, got int 5")],
    ),
    # -- nested tables
    ("nested_type", src("[sources.tls]\nca_file = 5"), [("sources[0].tls.ca_file", "string")]),
    (
        "nested_unknown_key",
        src("[sources.tls]\nverfy = false"),
        [("sources[0].tls.verfy", "unknown key (known: ca_file, key_password, verify)")],
    ),
    ("nested_not_a_table", src('tls = "on"'), [("sources[0].tls", "must be a table, got str")]),
    ("sink_nested", sink("[sinks.tls]\nca_file = []"), [("sinks[0].tls.ca_file", "got list")]),
    # -- dicts
    (
        "dict_value",
        sink('[sinks.mapping]\nfoo = "x"\nbar = 2'),
        [("sinks[0].mapping.foo", "must be a number, got str 'x'")],
    ),
    ("dict_not_a_table", sink("mapping = [1]"), [("sinks[0].mapping", "must be a table")]),
    (
        "dict_quoted_key",
        sink('mapping = { "a.b" = true }'),
        [('sinks[0].mapping."a.b"', "must be a number, got bool True")],
    ),
    # -- unions and optionals
    (
        "union_list",
        src("port_or_name = [1]"),
        [("sources[0].port_or_name", "must be an integer or a string, got list [1]")],
    ),
    (
        "union_float",
        src("port_or_name = 1.5"),
        [("sources[0].port_or_name", "must be an integer or a string, got float 1.5")],
    ),
    ("optional_type", src("client_id = 7"), [("sources[0].client_id", "must be a string")]),
    ("optional_range", src("max_inflight = 0"), [("sources[0].max_inflight", "must be >= 1")]),
    ("optional_duration", src('reconnect = "later"'), [("sources[0].reconnect", DURATION)]),
    # -- durations
    ("duration_word", src('keepalive = "abc"'), [("sources[0].keepalive", DURATION + ", got")]),
    ("duration_no_unit", src('keepalive = "30"'), [("sources[0].keepalive", "str '30'")]),
    ("duration_zero", src('keepalive = "0ms"'), [("sources[0].keepalive", "> 0, got '0ms'")]),
    ("duration_bool", sink("keepalive = true"), [("sinks[0].keepalive", "got bool True")]),
    # -- secrets
    (
        "secret_env_missing",
        sink(f'password = {{ env = "{UNSET}" }}'),
        [("sinks[0].password", f"environment variable {UNSET} is not set")],
    ),
    (
        "secret_file_missing",
        sink('password = { file = "{missing}" }'),
        [("sinks[0].password", "cannot read secret file"), ("sinks[0].password", "No such file")],
    ),
    (
        "secret_file_directory",
        sink('password = { file = "{tmp}" }'),
        [("sinks[0].password", "Is a directory")],
    ),
    (
        "secret_env_and_file",
        sink('password = { env = "A", file = "/b" }'),
        [("sinks[0].password", "exactly one of env or file, got env and file")],
    ),
    (
        "secret_unknown_key",
        sink('password = { env = "A", value = "hunter2" }'),
        [("sinks[0].password.value", "unknown key (known: env, file)")],
    ),
    ("secret_wrong_type", sink("password = 1234"), [("sinks[0].password", "must be a secret")]),
    (
        "secret_nested_in_a_table",
        src(f'[sources.tls]\nkey_password = {{ env = "{UNSET}" }}'),
        [("sources[0].tls.key_password", "is not set")],
    ),
    # -- the kinds there were before
    ("enum", src('mode = "turbo"'), [("sources[0].mode", "must be one of 'fast', 'safe'")]),
    (
        "required",
        CONSOLE.replace("console", "test_connector_sink") + SIMULATED,
        [
            ("sinks[0].url", "is required"),
        ],
    ),
    (
        "unknown_type_and_inverted_bounds",
        SIMULATED
        + '[[stages]]\ntype = "no_such_stage"\n[[stages]]\ntype = "threshold_filter"\n'
        + "min = 5.0\nmax = 1.0\n"
        + CONSOLE,
        [("stages[0].type", "unknown stage type 'no_such_stage'"), ("stages[1].min", "< max")],
    ),
    (
        "everything_at_once",
        "[daemon]\ncolour = 1\n"
        + SOURCE
        + 'topics = [1]\nkeepalive = "x"\n[sources.tls]\nca_file = 1\n'
        + PG
        + "retry = { attempts = 0 }\n",
        [
            ("daemon.colour", "unknown key"),
            ("sources[0].topics[0]", "must be a string"),
            ("sources[0].keepalive", DURATION),
            ("sources[0].tls.ca_file", "must be a string"),
            ("sinks[0].retry.attempts", "must be >= 1, got 0"),
        ],
    ),
    (
        "unprintable_key",
        src('"line\\nbreak" = 1\n"a b" = 2'),
        [('sources[0]."line\\u000abreak"', "unknown key"), ('sources[0]."a b"', "unknown key")],
    ),
    (
        "nested_too_deeply",
        src("topics = " + "[" * 3000 + "]" * 3000),
        [("{config}", "invalid TOML: nested too deeply")],
    ),
]
SUBPROCESS_CASES = ["secret_env_missing", "route_out_of_range", "unprintable_key"]


def test_there_are_forty() -> None:
    assert len(CASES) == 40
    assert len({case[0] for case in CASES}) == 40


@pytest.fixture
def connector(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(UNSET, raising=False)
    with registered_connector():
        yield


def write_case(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.toml"
    text = text.replace("{missing}", str(tmp_path / "no-such-secret"))
    path.write_text(text.replace("{tmp}", str(tmp_path)), encoding="utf-8")
    return path


def assert_names_every_key(err: str, expected: Expected, config: Path) -> None:
    assert "Traceback" not in err
    lines = err.splitlines()
    for template, fragment in expected:
        key = template.replace("{config}", str(config))
        assert any(line.startswith(f"  {key}: ") and fragment in line for line in lines), (
            f"no line for {key!r} with {fragment!r} in:\n{err}"
        )


@pytest.mark.usefixtures("connector")
@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_validate_exits_78_naming_every_key(
    tmp_path: Path, text: str, expected: Expected, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_case(tmp_path, text)
    assert main(["validate", "-c", str(path)]) == EX_CONFIG
    captured = capsys.readouterr()
    assert_names_every_key(captured.err, expected, path)
    assert "hunter2" not in captured.err
    assert captured.out == ""


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_validate_in_a_real_process(tmp_path: Path, case_id: str) -> None:
    (text, expected) = next(c[1:] for c in CASES if c[0] == case_id)
    path = write_case(tmp_path, text)
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    env = {k: v for k, v in os.environ.items() if k != UNSET}
    env["PYTHONPATH"] = os.pathsep.join([plugin_path(plugins), str(REPO)])
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # nothing written outside tmp_path
    proc = subprocess.run(
        [sys.executable, "-m", "daemon", "validate", "-c", str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == EX_CONFIG, proc.stderr
    assert_names_every_key(proc.stderr, expected, path)
