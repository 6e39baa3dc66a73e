"""What a reload changes and what it takes: a pure function of the old and the new config.

Sources, stages and sinks are rebuilt behind a drain (a new pipeline generation); daemon
settings apply live (log level and file, dead-letter path, health interval, HTTP, loop stall),
except the queue size, which the running pipeline was built with. The plan also names every
changed key with its old and new value (`changes.py`): the audit trail the daemon logs.
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon.config import AppConfig, ComponentSpec
from daemon.topology.changes import KeyChange, config_changes

_SECTIONS = ("sources", "stages", "sinks")


@dataclass(frozen=True)
class ReloadPlan:
    changed: tuple[str, ...]  # top-level keys whose values differ: `daemon`, `sinks[0]`, ...
    rebuild: bool  # drain the running generation and build the next one
    keys: tuple[KeyChange, ...] = ()  # every changed key, old -> new (secrets masked)


def plan_reload(old: AppConfig, new: AppConfig) -> ReloadPlan:
    changed = [] if new.daemon == old.daemon else ["daemon"]
    for section in _SECTIONS:
        mine: tuple[ComponentSpec, ...] = getattr(new, section)
        theirs: tuple[ComponentSpec, ...] = getattr(old, section)
        for i in range(max(len(mine), len(theirs))):
            a = mine[i] if i < len(mine) else None
            b = theirs[i] if i < len(theirs) else None
            if a is None or b is None or _identity(a) != _identity(b):
                changed.append(f"{section}[{i}]")
    rebuild = any(c != "daemon" for c in changed) or (
        new.daemon.queue_batches != old.daemon.queue_batches
    )
    return ReloadPlan(tuple(changed), rebuild, tuple(config_changes(old, new)))


def _identity(spec: ComponentSpec) -> tuple[object, ...]:
    return (spec.name, spec.config, spec.resilience)
