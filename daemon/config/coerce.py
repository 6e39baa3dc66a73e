"""TOML values into typed config objects, every error collected with its full key path.

`build` never stops at the first error and never raises for a value: whatever TOML holds, the
result is an instance or `ConfigIssue`s such as `sources[0].topics[2]: must be a string, got
int 5`. Only a type `check_config_type` would refuse raises (TypeError), and registration runs
that check first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from daemon.config.core import ConfigIssue, Range, got, join, short, unwrap
from daemon.config.schema import (
    NoneType,
    is_optional,
    item_type,
    kind_of,
    type_label,
    type_name,
)
from daemon.config.types import DURATION_HELP, coerce_secret, parse_duration

T = TypeVar("T")


class _Invalid:
    """What a coercion returns after it appended an issue (None is a legitimate value)."""


INVALID: Any = _Invalid()


def build(cls: type[T], table: Any, path: str, issues: list[ConfigIssue]) -> T | None:
    """An instance of dataclass `cls` from `table`, or None with `issues` appended."""
    if not isinstance(table, dict):
        issues.append(ConfigIssue(path, f"must be a table, got {type(table).__name__}"))
        return None
    before = len(issues)
    values = _values(cls, table, path, issues)
    if len(issues) > before:
        return None
    try:
        obj = cls(**values)
    except (TypeError, ValueError) as exc:  # a __post_init__ that validates on its own
        issues.append(ConfigIssue(path, f"invalid: {exc}"))
        return None
    check = getattr(obj, "check", None)
    if callable(check):
        for key, reason in check():
            issues.append(ConfigIssue(join(path, key), reason))
        if len(issues) > before:
            return None
    return obj


def _values(
    cls: type[Any], table: dict[str, Any], path: str, issues: list[ConfigIssue]
) -> dict[str, Any]:
    """The constructor arguments for `cls` from `table`: every key checked, unknown ones too."""
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in table:
        if key not in fields:
            known = ", ".join(sorted(fields))
            issues.append(ConfigIssue(join(path, key), f"unknown key (known: {known})"))
    values: dict[str, Any] = {}
    for name, f in fields.items():
        key_path = join(path, name)
        if name in table:
            value = coerce(hints[name], table[name], key_path, issues)
            if value is not INVALID:
                values[name] = value
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            if is_optional(hints[name]):
                values[name] = None  # TOML has no null: an absent key is the None
            else:
                issues.append(ConfigIssue(key_path, "is required"))
    return values


def _hints(cls: type[Any]) -> dict[str, Any]:
    """A class's resolved annotations, once: resolving them is most of the cost of a build."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = get_type_hints(cls, include_extras=True)
    return hints


_HINTS: dict[type[Any], dict[str, Any]] = {}


def coerce(
    hint: Any, raw: Any, path: str, issues: list[ConfigIssue], rng: Range | None = None
) -> Any:
    """`raw` as a value of `hint`, or `INVALID` with issues appended.

    `rng` is a Range inherited from an enclosing `Annotated[int | None, Range(...)]`: a bound
    reaches through a union to its numbers but not into a list's items.
    """
    base, own, _ = unwrap(hint)
    kind = kind_of(base)
    if kind is None:
        raise TypeError(f"config field {path}: {type_name(base)} is not a supported config type")
    return _COERCERS[kind](base, raw, path, issues, own or rng)


def _duration(base: Any, raw: Any, path: str, issues: list[ConfigIssue], rng: Range | None) -> Any:
    seconds = parse_duration(raw)
    if seconds is None:
        issues.append(ConfigIssue(path, f"must be {DURATION_HELP}, {_got(raw)}"))
        return INVALID
    return _bounded(seconds, raw, rng, path, issues)


def _secret(base: Any, raw: Any, path: str, issues: list[ConfigIssue], rng: Range | None) -> Any:
    secret = coerce_secret(raw, path, issues)
    return INVALID if secret is None else secret


def _literal(base: Any, raw: Any, path: str, issues: list[ConfigIssue], rng: Range | None) -> Any:
    allowed = get_args(base)
    if any(type(raw) is type(a) and raw == a for a in allowed):
        return raw
    choices = ", ".join(repr(a) for a in allowed)
    issues.append(ConfigIssue(path, f"must be one of {choices}, got {short(raw)}"))
    return INVALID


def _table(base: Any, raw: Any, path: str, issues: list[ConfigIssue], rng: Range | None) -> Any:
    obj = build(base, raw, path, issues)
    return INVALID if obj is None else obj


def _scalar(base: Any, raw: Any, path: str, issues: list[ConfigIssue], rng: Range | None) -> Any:
    ok = (
        (base is bool and isinstance(raw, bool))
        or (base is int and isinstance(raw, int) and not isinstance(raw, bool))
        or (base is float and isinstance(raw, int | float) and not isinstance(raw, bool))
        or (base is str and isinstance(raw, str))
    )
    if not ok:
        issues.append(ConfigIssue(path, f"must be {type_label(base)}, {_got(raw)}"))
        return INVALID
    if base is float:
        try:
            value = float(raw)
        except OverflowError:  # a TOML integer of 309+ digits
            issues.append(ConfigIssue(path, f"is too large for a number, {_got(raw)}"))
            return INVALID
        return _bounded(value, raw, rng, path, issues)
    if base is int:
        return _bounded(raw, raw, rng, path, issues)
    return raw


def _bounded(
    value: float, raw: Any, rng: Range | None, path: str, issues: list[ConfigIssue]
) -> Any:
    reason = rng.violation(value) if rng is not None else None
    if reason:
        issues.append(ConfigIssue(path, f"{reason}, got {short(raw)}"))
        return INVALID
    return value


def _sequence(base: Any, raw: Any, path: str, issues: list[ConfigIssue], rng: Range | None) -> Any:
    if not isinstance(raw, list):
        issues.append(ConfigIssue(path, f"must be a list, {_got(raw)}"))
        return INVALID
    item = item_type(base)
    before = len(issues)
    items = [coerce(item, x, f"{path}[{i}]", issues) for i, x in enumerate(raw)]
    if len(issues) > before:
        return INVALID
    return tuple(items) if get_origin(base) is tuple else items


def _mapping(base: Any, raw: Any, path: str, issues: list[ConfigIssue], rng: Range | None) -> Any:
    if not isinstance(raw, dict):
        issues.append(ConfigIssue(path, f"must be a table, {_got(raw)}"))
        return INVALID
    value_type = item_type(base)
    before = len(issues)
    out = {key: coerce(value_type, x, join(path, key), issues) for key, x in raw.items()}
    return INVALID if len(issues) > before else out


def _union(base: Any, raw: Any, path: str, issues: list[ConfigIssue], rng: Range | None) -> Any:
    """The first member `raw` is a valid value of, tried in declaration order.

    When every member refuses, the one member whose TOML shape `raw` has (a list for `list[T]`)
    reports its own, more precise issues; otherwise the error lists every member.
    """
    members = [m for m in get_args(base) if m is not NoneType]
    if len(members) == 1:
        return coerce(members[0], raw, path, issues, rng)
    refusals: list[tuple[Any, list[ConfigIssue]]] = []
    for member in members:
        scratch: list[ConfigIssue] = []
        value = coerce(member, raw, path, scratch, rng)
        if not scratch:
            return value
        refusals.append((member, scratch))
    fitting = [found for member, found in refusals if _fits(member, raw)]
    if len(fitting) == 1:
        issues.extend(fitting[0])
    else:
        issues.append(ConfigIssue(path, f"must be {type_label(base)}, {_got(raw)}"))
    return INVALID


def _fits(hint: Any, raw: Any) -> bool:
    """Whether `raw` has the TOML shape of `hint`, valid or not."""
    base = unwrap(hint)[0]
    kind = kind_of(base)
    if kind == "scalar":
        return _scalar(base, raw, "", [], None) is not INVALID
    if kind == "literal":
        return any(type(raw) is type(a) for a in get_args(base))
    return isinstance(raw, _SHAPES.get(kind or "", ()))


_NUMBER = (int, float)
_SHAPES: dict[str, tuple[type, ...]] = {
    "duration": (*_NUMBER, str),
    "secret": (str, dict),
    "table": (dict,),
    "dict": (dict,),
    "list": (list,),
    "tuple": (list,),
}


def _got(raw: Any) -> str:
    """`got <type> <value>`, with a table's values left out (they may hold a password)."""
    if isinstance(raw, dict):
        return f"got table with keys {short(sorted(raw))}" if raw else "got an empty table"
    return got(raw)


_Coercer = Callable[[Any, Any, str, list[ConfigIssue], Range | None], Any]
_COERCERS: dict[str, _Coercer] = {
    "scalar": _scalar,
    "duration": _duration,
    "secret": _secret,
    "literal": _literal,
    "table": _table,
    "list": _sequence,
    "tuple": _sequence,
    "dict": _mapping,
    "union": _union,
}
