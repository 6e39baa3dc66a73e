"""Typed, bounded config objects built from TOML tables, with errors that name the key path.

A component's config is a frozen dataclass. Each field's annotation is its type, optionally
wrapped in `Annotated[T, Range(...), "one-line doc"]`; its default is the default. `build()` turns
a TOML table into an instance or records `ConfigIssue`s such as
`stages[1].window: must be >= 1, got 0`. The same annotations feed `ingestd stages`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

T = TypeVar("T")


@dataclass(frozen=True)
class Range:
    """Numeric bounds for a field; any combination of the four."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def violation(self, value: float) -> str | None:
        if self.ge is not None and value < self.ge:
            return f"must be >= {_num(self.ge)}"
        if self.gt is not None and value <= self.gt:
            return f"must be > {_num(self.gt)}"
        if self.le is not None and value > self.le:
            return f"must be <= {_num(self.le)}"
        if self.lt is not None and value >= self.lt:
            return f"must be < {_num(self.lt)}"
        return None

    def describe(self) -> str:
        parts = [
            f"{op} {_num(v)}"
            for op, v in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
            if v is not None
        ]
        return ", ".join(parts)


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


@dataclass(frozen=True)
class ConfigIssue:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class ConfigError(Exception):
    """Raised with every issue found; the CLI prints them and exits 78 (EX_CONFIG)."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


@dataclass(frozen=True)
class FieldInfo:
    """What `ingestd stages` prints about one field."""

    name: str
    type_name: str
    default: Any
    doc: str
    bounds: str
    required: bool


def field_infos(cls: type) -> list[FieldInfo]:
    hints = get_type_hints(cls, include_extras=True)
    out = []
    for f in dataclasses.fields(cls):
        base, rng, doc = _unwrap(hints[f.name])
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        default: Any = None
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        out.append(
            FieldInfo(
                name=f.name,
                type_name=_type_name(base),
                default=default,
                doc=doc,
                bounds=rng.describe() if rng else "",
                required=required,
            )
        )
    return out


def _unwrap(hint: Any) -> tuple[Any, Range | None, str]:
    rng: Range | None = None
    doc = ""
    if get_origin(hint) is typing.Annotated:
        base, *meta = get_args(hint)
        for m in meta:
            if isinstance(m, Range):
                rng = m
            elif isinstance(m, str):
                doc = m
        return base, rng, doc
    return hint, None, doc


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "|".join(repr(a) for a in get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "table"
    return getattr(tp, "__name__", str(tp))


def _type_label(tp: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    return names.get(tp, _type_name(tp))


def build(cls: type[T], table: Any, path: str, issues: list[ConfigIssue]) -> T | None:
    """An instance of dataclass `cls` from `table`, or None with `issues` appended."""
    if not isinstance(table, dict):
        issues.append(ConfigIssue(path, f"must be a table, got {type(table).__name__}"))
        return None
    hints = get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    before = len(issues)
    for key in table:
        if key not in fields:
            known = ", ".join(sorted(fields))
            issues.append(ConfigIssue(_join(path, key), f"unknown key (known: {known})"))
    values: dict[str, Any] = {}
    for name, f in fields.items():
        key_path = _join(path, name)
        if name not in table:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                issues.append(ConfigIssue(key_path, "is required"))
            continue
        value = _coerce(hints[name], table[name], key_path, issues)
        if value is not _INVALID:
            values[name] = value
    if len(issues) > before:
        return None
    obj = cls(**values)
    check = getattr(obj, "check", None)
    if callable(check):
        for key, reason in check():
            issues.append(ConfigIssue(_join(path, key), reason))
        if len(issues) > before:
            return None
    return obj


_INVALID = object()


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _coerce(hint: Any, raw: Any, path: str, issues: list[ConfigIssue]) -> Any:
    base, rng, _ = _unwrap(hint)
    if get_origin(base) is Literal:
        allowed = get_args(base)
        if raw not in allowed:
            choices = ", ".join(repr(a) for a in allowed)
            issues.append(ConfigIssue(path, f"must be one of {choices}, got {raw!r}"))
            return _INVALID
        return raw
    if dataclasses.is_dataclass(base) and isinstance(base, type):
        got = build(base, raw, path, issues)
        return _INVALID if got is None else got
    if get_origin(base) in (types.UnionType, typing.Union):
        raise TypeError(f"config field {path}: unions are not supported")
    ok = (
        (base is bool and isinstance(raw, bool))
        or (base is int and isinstance(raw, int) and not isinstance(raw, bool))
        or (base is float and isinstance(raw, int | float) and not isinstance(raw, bool))
        or (base is str and isinstance(raw, str))
    )
    if not ok:
        issues.append(
            ConfigIssue(path, f"must be {_type_label(base)}, got {type(raw).__name__} {raw!r}")
        )
        return _INVALID
    value = float(raw) if base is float else raw
    if rng is not None and isinstance(value, int | float) and not isinstance(value, bool):
        reason = rng.violation(value)
        if reason:
            issues.append(ConfigIssue(path, f"{reason}, got {raw!r}"))
            return _INVALID
    return value
