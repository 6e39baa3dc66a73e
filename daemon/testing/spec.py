"""A test file: TOML in, `PipelineTest`s out, every error with its key path (the CLI exits 78).

The shape (config/examples/tests/ has working files; `CaseKeys` below documents every key):

    config = "../alerts.toml"      # every test's, unless it names its own; relative to this file

    [[tests]]
    name = "a hot sensor fires after 5 s"
    at = "sinks[0]"                # stages[N]: after it; sinks: after the last stage;
                                   # sinks[N]: what that sink takes (its kinds)
    kinds = ["alert"]              # compare only these records (absent: all)
    input = [                      # or input_file = "lines.csv", replayed by the file source
      { sensor_id = "t1", value = 95.0 },   # seq and ts may be left out: they count on
    ]
    expect = [ { kind = "alert", state = "firing", value = { approx = 95.0, tol = 1e-6 } } ]
    absent = [ { kind = "alert", state = "resolved" } ]   # records that must not be there
    counters = { alerts = 1 }

`expect` lists every record compared, in order; with `complete = false` other records may come
between. A record is matched on the fields an expectation names (see `matchers.py`).

Why a test names a config file: the test then checks the stages the daemon really runs with,
keys and order included, and breaks when someone edits them; inline `stages` are for a stage
on its own. A config is loaded (and validated) as `ingestd run` would load it; only its stages
run, in this process.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from daemon.batch import RECORD_KINDS
from daemon.config import ComponentSpec, ConfigError, ConfigIssue, Duration, Range
from daemon.config.core import got, join
from daemon.config.fields import build
from daemon.testing.inputs import InputReading, parse_inputs
from daemon.testing.matchers import Expectation, epoch, parse_expectation
from daemon.testing.pipeline import Configs, Pipeline, inline_stages, replay_source
from daemon.testing.point import Point, parse_point

COUNTED = ("filtered", "rejected", "features", "alerts")  # the counters stages move
START_TS = 1_704_067_200.0  # 2024-01-01T00:00:00Z


@dataclass(frozen=True)
class CaseKeys:
    """A `[[tests]]` table's own keys (`input`, `expect`, `absent`, `stages` are read apart)."""

    name: Annotated[str, "what the test shows, printed with its result"]
    config: Annotated[
        str | None, "the config whose stages run, relative to the test file; absent: the file's"
    ] = None
    at: Annotated[str, "where the records are compared: stages[N], sinks or sinks[N]"] = "sinks"
    input_file: Annotated[
        str | None,
        "a CSV or JSON-lines file (relative to the test file) replayed by the config's file"
        " source, instead of input",
    ] = None
    batch_size: Annotated[
        int,
        Range(ge=1, le=1_000_000),
        "input readings per batch (an input_file is batched by its source); 1: each"
        " reading's derived records follow it",
    ] = 1
    complete: Annotated[
        bool, "expect lists every record compared; false: other records may come between"
    ] = True
    kinds: Annotated[
        tuple[str, ...] | None, "the records compared, of reading, features, alert; absent: all"
    ] = None
    start_ts: Annotated[
        float, "ts of a sensor's first input that gives none: epoch seconds or a datetime"
    ] = START_TS
    interval_s: Annotated[Duration, Range(gt=0), "ts step of a sensor's inputs that give none"] = (
        1.0
    )
    timeout_s: Annotated[Duration, Range(gt=0), "the test fails if its stages take longer"] = 30.0
    counters: Annotated[
        dict[str, int], "counters after the run, of filtered, rejected, features, alerts"
    ] = field(default_factory=dict)

    def check(self) -> list[tuple[str, str]]:
        known = ", ".join(RECORD_KINDS)
        if self.kinds is not None and (
            not self.kinds or any(k not in RECORD_KINDS for k in self.kinds)
        ):
            return [("kinds", f"must name kinds of: {known}, got {list(self.kinds)}")]
        if bad := [k for k in self.counters if k not in COUNTED]:
            return [("counters", f"unknown counter {bad[0]!r} (known: {', '.join(COUNTED)})")]
        if not math.isfinite(self.start_ts):
            return [("start_ts", f"must be a finite time, got {self.start_ts}")]
        return []


@dataclass(frozen=True)
class PipelineTest:
    path: str  # its key path: `tests[2]`
    keys: CaseKeys
    pipeline: Pipeline
    at: Point
    inputs: tuple[InputReading, ...]  # empty when `replay` reads the input_file
    replay: ComponentSpec | None  # the config's file source, reading input_file
    expect: tuple[Expectation, ...]
    absent: tuple[Expectation, ...]

    @property
    def name(self) -> str:
        return self.keys.name

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(self.keys.kinds or RECORD_KINDS)


def load_tests(path: Path) -> list[PipelineTest]:
    """Every test of the file at `path`; ConfigError naming every bad key."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(str(path), "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue(str(path), f"cannot read: {exc}")]) from None
    except ValueError as exc:  # TOMLDecodeError
        raise ConfigError([ConfigIssue(str(path), f"invalid TOML: {exc}")]) from None
    issues: list[ConfigIssue] = []
    for key in raw:
        if key not in ("config", "tests"):
            issues.append(ConfigIssue(key, "unknown key (known: config, tests)"))
    default_config = raw.get("config")
    if default_config is not None and not isinstance(default_config, str):
        issues.append(ConfigIssue("config", f"must be a path, {got(default_config)}"))
        default_config = None
    tables = raw.get("tests")
    if not isinstance(tables, list) or not tables:
        issues.append(ConfigIssue("tests", "at least one [[tests]] table is required"))
        tables = []
    configs = Configs(path.parent)
    cases = []
    for i, table in enumerate(tables):
        case = _case(f"tests[{i}]", table, default_config, configs, issues)
        if case is not None:
            cases.append(case)
    if issues:
        raise ConfigError(issues)
    return cases


def _case(
    path: str,
    table: Any,
    default_config: str | None,
    configs: Configs,
    issues: list[ConfigIssue],
) -> PipelineTest | None:
    if not isinstance(table, dict):
        issues.append(ConfigIssue(path, "must be a table ([[tests]])"))
        return None
    before = len(issues)
    own = {k: v for k, v in table.items() if k not in ("input", "expect", "absent", "stages")}
    when = epoch(own.get("start_ts"))
    if when is not None:
        own["start_ts"] = when  # a TOML datetime or an ISO-8601 string
    keys = build(CaseKeys, own, path, issues)
    pipeline = _pipeline(
        path, table, keys, default_config=default_config, configs=configs, issues=issues
    )
    replay: ComponentSpec | None = None
    inputs: tuple[InputReading, ...] | None = ()
    if keys is not None and keys.input_file is not None:
        key = join(path, "input_file")
        if "input" in table:
            issues.append(ConfigIssue(key, "give input or input_file, not both"))
        elif pipeline is not None:
            replay = replay_source(pipeline, configs.base / keys.input_file, key, issues)
    else:
        start, step = (keys.start_ts, keys.interval_s) if keys else (START_TS, 1.0)
        inputs = parse_inputs(join(path, "input"), table.get("input"), start, step, issues)
    expect = _expectations(join(path, "expect"), table.get("expect", []), issues)
    absent = _expectations(join(path, "absent"), table.get("absent", []), issues)
    if keys is None or pipeline is None or inputs is None:
        return None
    stages, sinks = len(pipeline.stages), len(pipeline.sinks)
    at = parse_point(keys.at, join(path, "at"), stages, sinks, issues)
    if len(issues) > before or at is None:
        return None
    return PipelineTest(path, keys, pipeline, at, inputs, replay, expect, absent)


def _pipeline(
    path: str,
    table: dict[str, Any],
    keys: CaseKeys | None,
    *,
    default_config: str | None,
    configs: Configs,
    issues: list[ConfigIssue],
) -> Pipeline | None:
    """The stages (and the sinks, for `at = sinks[N]`) from the config or inline."""
    config = keys.config if keys is not None else None
    if "stages" in table:
        if config is not None:
            issues.append(ConfigIssue(join(path, "stages"), "give config or stages, not both"))
        return inline_stages(join(path, "stages"), table["stages"], issues)
    name = config or default_config
    if name is None:
        issues.append(ConfigIssue(join(path, "config"), "is required (or inline [[tests.stages]])"))
        return None
    return configs.load(name, join(path, "config"), issues)


def _expectations(path: str, tables: Any, issues: list[ConfigIssue]) -> tuple[Expectation, ...]:
    if not isinstance(tables, list):
        issues.append(ConfigIssue(path, f"must be an array of tables, {got(tables)}"))
        return ()
    parsed = [parse_expectation(t, f"{path}[{i}]", issues) for i, t in enumerate(tables)]
    return tuple(e for e in parsed if e is not None)
