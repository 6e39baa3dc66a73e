"""Every key a reload changes, with its old and new value: the reload's audit trail.

Why per key and not per section: "sinks[0] changed" tells an operator that the pipeline was
rebuilt, not what someone edited; the audit trail must answer "who turned retry.attempts down
to 1, and from what" from the logs alone. So each changed leaf key is named by its TOML path
(`stages[1].window`, `sinks[0].retry.attempts`, `daemon.http.port`) with both values.

Values are shown as JSON can hold them, and a `Secret` is always `"***"`: a rotated password
is logged as changed (its key), never as what it was or became. A component added or removed
is one change at its label with its whole config (type included) on one side; a component
whose `type` changed is the same, since its keys belong to another schema.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

from daemon.config import AppConfig, ComponentSpec
from daemon.config.types import Secret

MASK = "***"
_SECTIONS = ("sources", "stages", "sinks")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class KeyChange:
    key: str  # its TOML path: `daemon.log_level`, `stages[1].window`, `sinks[2]` (added)
    old: Any  # a plain value (secrets masked); None: there was no such key
    new: Any  # a plain value (secrets masked); None: there is no such key now


def config_changes(old: AppConfig, new: AppConfig) -> list[KeyChange]:
    """What differs between `old` and `new`, key by key, in the order of the config file."""
    changes = _dataclass_changes("daemon", old.daemon, new.daemon)
    for section in _SECTIONS:
        before: tuple[ComponentSpec, ...] = getattr(old, section)
        after: tuple[ComponentSpec, ...] = getattr(new, section)
        for i in range(max(len(before), len(after))):
            label = f"{section}[{i}]"
            a = before[i] if i < len(before) else None
            b = after[i] if i < len(after) else None
            changes.extend(_component_changes(label, a, b))
    return changes


def _component_changes(
    label: str, old: ComponentSpec | None, new: ComponentSpec | None
) -> list[KeyChange]:
    if old is None or new is None or old.name != new.name:
        return [KeyChange(label, _whole(old), _whole(new))]
    changes = _dataclass_changes(label, old.config, new.config)
    if old.resilience is not None and new.resilience is not None:
        changes.extend(_dataclass_changes(label, old.resilience, new.resilience))
    return changes


def _whole(spec: ComponentSpec | None) -> dict[str, Any] | None:
    """A component as its table: `type` and every key (the resolved defaults included)."""
    if spec is None:
        return None
    table: dict[str, Any] = {"type": spec.name, **plain(spec.config)}
    if spec.resilience is not None:
        table.update(plain(spec.resilience))
    return table


def _dataclass_changes(path: str, old: Any, new: Any) -> list[KeyChange]:
    changes: list[KeyChange] = []
    for f in dataclasses.fields(old):
        a, b = getattr(old, f.name), getattr(new, f.name, None)
        changes.extend(_value_changes(f"{path}.{f.name}", a, b))
    return changes


def _value_changes(path: str, old: Any, new: Any) -> list[KeyChange]:
    if _same(old, new):
        return []
    if dataclasses.is_dataclass(old) and type(old) is type(new):
        return _dataclass_changes(path, old, new)
    if isinstance(old, dict) and isinstance(new, dict):
        changes: list[KeyChange] = []
        for key in [*old, *(k for k in new if k not in old)]:
            changes.extend(_value_changes(f"{path}.{_key(key)}", old.get(key), new.get(key)))
        return changes
    return [KeyChange(path, plain(old), plain(new))]


def _same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN (a `float` key may hold it; it has not changed)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and bool(a == b)


def _key(key: object) -> str:
    text = str(key)
    return text if _BARE_KEY.fullmatch(text) else '"' + text.replace('"', '\\"') + '"'


def plain(value: Any) -> Any:
    """`value` as a JSON log line can hold it: secrets masked, tuples as lists, a sub-table as
    a dict, a non-finite float as its name."""
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return _scalar(value)


def _scalar(value: Any) -> Any:
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return str(value)  # inf, nan, and anything else a log line cannot hold
