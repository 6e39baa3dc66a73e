"""Read the TOML file and turn it into an `AppConfig`, collecting every error with its key path."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

from daemon.batch import RECORD_KINDS
from daemon.config import budget
from daemon.config.budget import DEFAULT_MAX_BYTES
from daemon.config.fields import ConfigError, ConfigIssue, Range, build
from daemon.config.paths import unusable_dir
from daemon.registry import REGISTRY, Kind


@dataclass(frozen=True)
class HttpConfig:
    enabled: Annotated[bool, "serve /metrics and /healthz"] = False
    host: Annotated[str, "bind address; loopback unless you mean it"] = "127.0.0.1"
    port: Annotated[int, Range(ge=0, le=65535), "TCP port (0: any free port)"] = 9108
    stale_after_s: Annotated[
        float, Range(gt=0), "/healthz fails when nothing was written for this long"
    ] = 60.0
    breaker_open_max_s: Annotated[
        float, Range(gt=0), "/healthz fails when a breaker stays open longer than this"
    ] = 60.0


@dataclass(frozen=True)
class DaemonConfig:
    log_level: Annotated[Literal["debug", "info", "warning", "error"], "log threshold"] = "info"
    log_file: Annotated[str, "empty: stdout (journald); a path: JSON lines, reopened on SIGHUP"] = (
        ""
    )
    shutdown_timeout_s: Annotated[
        float, Range(gt=0), "drain deadline after SIGTERM before in-flight data is spooled"
    ] = 20.0
    health_interval_s: Annotated[float, Range(gt=0), "seconds between pipeline_health"] = 10.0
    dead_letter: Annotated[str, "rejected input, one JSON line each"] = "data/dead-letter.jsonl"
    state_dir: Annotated[
        str, "what survives a restart: each sensor's next seq, each file source's position"
    ] = "data/state"
    queue_batches: Annotated[
        int, Range(ge=1, le=100_000), "batches buffered between sources and stages"
    ] = 64
    reload_timeout_s: Annotated[
        float,
        Range(gt=0),
        "drain deadline of the old pipeline on a reload that rebuilds it, before its in-flight"
        " data is spooled",
    ] = 20.0
    loop_stall_s: Annotated[
        float, Range(gt=0), "event-loop lag that counts as stalled (watchdog stops feeding)"
    ] = 5.0
    # Why a key: 2 GiB suits the VMs this runs on; a bigger machine may allow more, knowingly.
    memory_max_bytes: Annotated[
        int,
        Range(ge=256 * 1024 * 1024, le=256 * 1024**3),
        "a config whose worst-case memory estimate (daemon/config/budget.py) exceeds this is"
        " refused",
    ] = DEFAULT_MAX_BYTES
    http: HttpConfig = field(default_factory=HttpConfig)


@dataclass(frozen=True)
class RetryConfig:
    attempts: Annotated[int, Range(ge=1, le=100), "tries per write, the first included"] = 3
    base_delay_s: Annotated[float, Range(ge=0), "first backoff; doubles per attempt"] = 0.05
    max_delay_s: Annotated[float, Range(gt=0), "cap on one backoff"] = 2.0
    jitter: Annotated[bool, "randomise each backoff in [0, delay]"] = True


@dataclass(frozen=True)
class BreakerConfig:
    failure_threshold: Annotated[
        int, Range(ge=1), "consecutive failed writes that open the breaker"
    ] = 5
    reset_timeout_s: Annotated[float, Range(gt=0), "open time before a half-open probe"] = 5.0


@dataclass(frozen=True)
class SinkResilience:
    """The keys every sink has besides its own: retry, breaker and spool."""

    retry: RetryConfig = field(default_factory=RetryConfig)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    spool_dir: Annotated[str, "default: data/spool/<type>-<index>"] = ""
    spool_segment_bytes: Annotated[
        int, Range(ge=4096), "spool segment size before it is sealed"
    ] = 16 * 1024 * 1024
    # Why this default: the spool shares its disk with the sink's file, the dead letters and
    # the logs, so it may take a quarter of what is free, and never more than 1 GiB (about 20M
    # readings: hours of outage at the default 1,000 readings/s). A fixed byte default would be
    # too much on a small disk and too little on a big one. Full: the sources wait, no drop.
    spool_max_bytes: Annotated[
        int,
        Range(ge=0),
        "spool size cap in bytes; when reached, deliveries wait (the sources pause) until the"
        " sink or the spool can take the batch. 0: min(1 GiB, a quarter of the free space of"
        " the spool's file system when it opens, plus what it already holds)",
    ] = 0
    # Why 30 s: a batch write+flush takes milliseconds to a file or a database; a sink silent
    # for 30 s is stuck, not slow. Longer than the 20 s shutdown_timeout_s does not matter: a
    # drain deadline forces the write off at once.
    write_timeout_s: Annotated[
        float,
        Range(gt=0),
        "deadline of one write+flush (and of open, flush and close); past it the write is"
        " cancelled, the breaker opens and the batch is spooled",
    ] = 30.0
    # Why here: choosing what a sink takes is the topology's job (the guarded sink hands it a
    # part of each batch), not each sink's; so it is a key every sink has, checked once.
    kinds: Annotated[
        tuple[str, ...] | None,
        "what the sink takes, of reading, features, alert (absent: all it can store);"
        " e.g. alerts to MQTT while readings go to PostgreSQL",
    ] = None

    def check(self) -> list[tuple[str, str]]:
        if self.kinds is None:
            return []
        known = ", ".join(RECORD_KINDS)
        if not self.kinds:
            return [("kinds", f"must not be empty (known: {known})")]
        unknown = [k for k in self.kinds if k not in RECORD_KINDS]
        if unknown:
            names = ", ".join(repr(k) for k in unknown)
            return [("kinds", f"unknown kind {names} (known: {known})")]
        if len(set(self.kinds)) < len(self.kinds):
            return [("kinds", "must not name a kind twice")]
        return []


_RESILIENCE_KEYS = set(SinkResilience.__dataclass_fields__)


@dataclass(frozen=True)
class ComponentSpec:
    kind: Kind
    name: str  # the registered component name, the config's `type`
    label: str  # e.g. "sinks[0]"
    cls: type[Any]
    config: Any
    resilience: SinkResilience | None = None  # sinks only


@dataclass(frozen=True)
class AppConfig:
    daemon: DaemonConfig
    sources: tuple[ComponentSpec, ...]
    stages: tuple[ComponentSpec, ...]
    sinks: tuple[ComponentSpec, ...]
    path: str = ""


def load_config(path: str | Path) -> AppConfig:
    """Read and validate `path`; raise ConfigError naming every bad key."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(str(p), "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue(str(p), f"cannot read: {exc}")]) from None
    return parse_config(text, source=str(p))


def parse_config(text: str, source: str = "<string>") -> AppConfig:
    """Validate TOML `text`; whatever it holds, the only exception is ConfigError."""
    try:
        raw = tomllib.loads(text)
    except ValueError as exc:  # TOMLDecodeError, or an integer past int()'s 4300-digit limit
        raise ConfigError([ConfigIssue(source, f"invalid TOML: {exc}")]) from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise ConfigError([ConfigIssue(source, "invalid TOML: nested too deeply")]) from None
    issues: list[ConfigIssue] = []
    known = {"daemon", "sources", "stages", "sinks"}
    for key in raw:
        if key not in known:
            issues.append(ConfigIssue(key, f"unknown section (known: {', '.join(sorted(known))})"))
    daemon = build(DaemonConfig, raw.get("daemon", {}), "daemon", issues)
    if daemon is not None and (problem := unusable_dir(daemon.state_dir)):
        issues.append(ConfigIssue("daemon.state_dir", problem))
    sources = _components(raw, "sources", "source", issues)
    stages = _components(raw, "stages", "stage", issues)
    sinks = _components(raw, "sinks", "sink", issues)
    if not sources and "sources" not in raw:
        issues.append(ConfigIssue("sources", "at least one [[sources]] is required"))
    if not sinks and "sinks" not in raw:
        issues.append(ConfigIssue("sinks", "at least one [[sinks]] is required"))
    if issues or daemon is None:
        raise ConfigError(issues)
    app = AppConfig(daemon, tuple(sources), tuple(stages), tuple(sinks), path=source)
    if issues := budget.check(app):  # the keys together, once each is valid on its own
        raise ConfigError(issues)
    return app


def _components(
    raw: dict[str, Any], section: str, kind: Kind, issues: list[ConfigIssue]
) -> list[ComponentSpec]:
    tables = raw.get(section, [])
    if not isinstance(tables, list):
        issues.append(ConfigIssue(section, f"must be an array of tables ([[{section}]])"))
        return []
    if section in raw and not tables and section != "stages":
        issues.append(ConfigIssue(section, "must not be empty"))
    specs = []
    for i, table in enumerate(tables):
        label = f"{section}[{i}]"
        if not isinstance(table, dict):
            issues.append(ConfigIssue(label, "must be a table"))
            continue
        type_name = table.get("type")
        if not isinstance(type_name, str):
            issues.append(ConfigIssue(f"{label}.type", "is required (a component name)"))
            continue
        entry = REGISTRY.get(kind, type_name)
        if entry is None:
            names = ", ".join(REGISTRY.names(kind))
            issues.append(
                ConfigIssue(f"{label}.type", f"unknown {kind} type {type_name!r} (known: {names})")
            )
            continue
        params = {k: v for k, v in table.items() if k != "type"}
        resilience = None
        if kind == "sink":
            res_raw = {k: params.pop(k) for k in list(params) if k in _RESILIENCE_KEYS}
            resilience = build(SinkResilience, res_raw, label, issues)
            if resilience is not None and not resilience.spool_dir:
                resilience = replace(resilience, spool_dir=f"data/spool/{type_name}-{i}")
            if resilience is not None:
                resilience = _sink_kinds(resilience, type_name, entry.cls, label, issues)
            if resilience is not None and (problem := unusable_dir(resilience.spool_dir)):
                issues.append(ConfigIssue(f"{label}.spool_dir", problem))
        config = build(entry.cls.Config, params, label, issues)
        if config is not None and (kind != "sink" or resilience is not None):
            specs.append(ComponentSpec(kind, type_name, label, entry.cls, config, resilience))
    return specs


def _sink_kinds(
    resilience: SinkResilience,
    type_name: str,
    cls: type[Any],
    label: str,
    issues: list[ConfigIssue],
) -> SinkResilience | None:
    """`kinds` resolved against what the sink class `stores`: absent, all of it (in
    `RECORD_KINDS` order); a kind it cannot store is an issue (None)."""
    stores: frozenset[str] = getattr(cls, "stores", frozenset(RECORD_KINDS))
    if resilience.kinds is None:
        return replace(resilience, kinds=tuple(k for k in RECORD_KINDS if k in stores))
    refused = [k for k in resilience.kinds if k not in stores]
    if refused:
        can = ", ".join(k for k in RECORD_KINDS if k in stores)
        names = ", ".join(repr(k) for k in refused)
        issues.append(
            ConfigIssue(
                f"{label}.kinds", f"a {type_name} sink cannot store {names} (it stores: {can})"
            )
        )
        return None
    return resilience
