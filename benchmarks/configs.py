"""Daemon configs for benchmarks and tests: built as dicts, rendered to TOML, in one place.

Why here: the benchmarks and the tests both run the daemon on generated configs, and they used
to carry their own copies of the default stage chain as TOML text, which drift apart silently.
The chain now comes from the daemon's embedded `default.toml` (the file `ingestd run` without
`-c` reads), so there is one source of truth. The module sits in `benchmarks` because the
dependency already runs tests -> benchmarks -> daemon (benchmarks must not import tests).

Why a renderer of our own: configs are small and plain (scalars, arrays, tables, arrays of
tables), the standard library reads TOML but cannot write it, and a dependency only for this is
not worth it. `render` is checked against `tomllib` in tests/unit/test_benchmark_configs.py.
"""

from __future__ import annotations

import copy
import functools
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from daemon.cli import default_config_path

Table = dict[str, Any]
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


@functools.cache
def _default() -> Table:
    with default_config_path().open("rb") as f:
        return tomllib.load(f)


def default_stages() -> list[Table]:
    """The `[[stages]]` of the embedded default config, as fresh dicts a caller may change."""
    stages: list[Table] = copy.deepcopy(_default()["stages"])
    return stages


def default_chain() -> list[Table]:
    """The default stages without `features`: the chain every benchmark and e2e test runs
    (threshold_filter, normalize, moving_average); `features` is opted into per run."""
    return [s for s in default_stages() if s["type"] != "features"]


def features(**overrides: Any) -> Table:
    """The default config's `features` stage with `overrides` (e.g. `workers=1`)."""
    [stage] = [s for s in default_stages() if s["type"] == "features"]
    return stage | overrides


def render(doc: Mapping[str, Any]) -> str:
    """TOML text for `doc`: a table of str, int, float, bool, lists of those, sub-tables and
    lists of tables. Keys keep their order within each kind (values, tables, arrays of tables,
    as TOML needs values before the first header); `tomllib.loads(render(d)) == d`."""
    lines: list[str] = []
    _table(doc, (), lines)
    return "\n".join(lines).strip() + "\n"


def write(path: Path, doc: Mapping[str, Any]) -> Path:
    """`doc` rendered into `path`; returns `path`."""
    path.write_text(render(doc))
    return path


def _is_table_array(value: Any) -> bool:
    return (
        isinstance(value, list | tuple)
        and bool(value)
        and all(isinstance(v, Mapping) for v in value)
    )


def _table(table: Mapping[str, Any], path: tuple[str, ...], lines: list[str]) -> None:
    subtables = {k: v for k, v in table.items() if isinstance(v, Mapping)}
    arrays = {k: v for k, v in table.items() if _is_table_array(v)}
    for key, value in table.items():
        if key not in subtables and key not in arrays:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, sub in subtables.items():
        lines += ["", f"[{_dotted((*path, key))}]"]
        _table(sub, (*path, key), lines)
    for key, items in arrays.items():
        for item in items:
            lines += ["", f"[[{_dotted((*path, key))}]]"]
            _table(item, (*path, key), lines)


def _dotted(path: Sequence[str]) -> str:
    return ".".join(_key(k) for k in path)


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):  # before int: bool is an int
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str | Path):
        return _string(str(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot render {type(value).__name__} {value!r} as TOML")


def _string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def postgres_sink(dsn: str, table: str, **more: Any) -> Table:
    """A `postgres` sink writing the three tables of its own that `table` names (readings,
    `<table>_f` features, `<table>_a` alerts), so a run never touches another's tables."""
    readings, features_table, alerts = postgres_tables(table)
    return {
        "type": "postgres",
        "dsn": dsn,
        "table": readings,
        "features_table": features_table,
        "alerts_table": alerts,
    } | more


def postgres_tables(table: str) -> tuple[str, str, str]:
    return table, f"{table}_f", f"{table}_a"


def drop_postgres_tables(table: str) -> str:
    """The statement that drops what `postgres_sink(…, table)` created."""
    return "DROP TABLE IF EXISTS " + ", ".join(f'"{t}"' for t in postgres_tables(table))
