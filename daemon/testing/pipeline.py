"""The pipeline a test runs: the stages (and sinks) of a config file, or inline stage tables;
and, for `input_file`, the config's file source pointed at that file.

A config is loaded as `ingestd run` loads it (every key validated, defaults resolved), once per
test file; its errors are the test file's errors, under the key that named it. Inline stages are
checked as the loader checks `[[stages]]`, with this file's key paths
(`tests[1].stages[0].window: must be >= 1, got 0`), and labelled as the daemon labels them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.config import AppConfig, ComponentSpec, ConfigError, ConfigIssue, load_config
from daemon.config.core import join
from daemon.config.fields import build
from daemon.registry import REGISTRY

INLINE = "inline stages"


@dataclass(frozen=True)
class Pipeline:
    origin: str  # the config file it comes from, or INLINE
    stages: tuple[ComponentSpec, ...]
    sinks: tuple[ComponentSpec, ...] = ()
    sources: tuple[ComponentSpec, ...] = ()


class Configs:
    """Config files loaded once per test file, relative to its directory."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._loaded: dict[Path, AppConfig | ConfigError] = {}

    def load(self, name: str, key: str, issues: list[ConfigIssue]) -> Pipeline | None:
        path = self.base / name
        if path not in self._loaded:
            try:
                self._loaded[path] = load_config(path)
            except ConfigError as exc:
                self._loaded[path] = exc
        loaded = self._loaded[path]
        if isinstance(loaded, ConfigError):
            for issue in loaded.issues:
                where = str(issue) if issue.path == str(path) else f"{name}: {issue}"
                issues.append(ConfigIssue(key, where))
            return None
        return Pipeline(name, loaded.stages, loaded.sinks, loaded.sources)


def inline_stages(path: str, tables: Any, issues: list[ConfigIssue]) -> Pipeline:
    if not isinstance(tables, list):
        issues.append(ConfigIssue(path, "must be an array of tables ([[tests.stages]])"))
        return Pipeline(INLINE, ())
    specs = []
    for i, table in enumerate(tables):
        key = f"{path}[{i}]"
        type_name = table.get("type") if isinstance(table, dict) else None
        if not isinstance(type_name, str):
            issues.append(ConfigIssue(join(key, "type"), "is required (a stage name)"))
            continue
        entry = REGISTRY.get("stage", type_name)
        if entry is None:
            known = ", ".join(REGISTRY.names("stage"))
            issues.append(
                ConfigIssue(join(key, "type"), f"unknown stage type {type_name!r} (known: {known})")
            )
            continue
        params = {k: v for k, v in table.items() if k != "type"}
        config = build(entry.cls.Config, params, key, issues)
        if config is not None:
            specs.append(ComponentSpec("stage", type_name, f"stages[{i}]", entry.cls, config))
    return Pipeline(INLINE, tuple(specs))


def replay_source(
    pipeline: Pipeline, file: Path, key: str, issues: list[ConfigIssue]
) -> ComponentSpec | None:
    """The config's first `file` source, reading `file` instead of its own path: the lines are
    parsed, rejected and batched exactly as the daemon would replay them. `on_error = "exit"`:
    in a test, a file that cannot be read is a failure, not something to wait for."""
    spec = next((s for s in pipeline.sources if s.name == "file"), None)
    if spec is None:
        issues.append(ConfigIssue(key, f"{pipeline.origin} has no file source to replay it with"))
        return None
    if not file.is_file():
        issues.append(ConfigIssue(key, f"no such file: {file}"))
        return None
    config = dataclasses.replace(spec.config, path=str(file), on_error="exit")
    problems = config.check() if hasattr(config, "check") else []
    issues.extend(ConfigIssue(key, f"{spec.label}.{k} {reason}") for k, reason in problems)
    return None if problems else dataclasses.replace(spec, config=config)
