"""What a config annotation means, checked once when a component registers.

`build` can fill a field only from a type whose TOML shape is known. `check_config_type` walks a
`Config` dataclass the way `build` will and refuses anything else, so a component declaring
`set[int]` fails when its module is imported, in the author's test run, and not when a user's
config is loaded. The same walk names types for `ingestd stages` and for error messages.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, get_args, get_origin, get_type_hints

from daemon.config.core import DURATION, unwrap
from daemon.config.types import DURATION_HELP, SECRET_HELP, Secret

NoneType = type(None)
SCALARS: tuple[type, ...] = (bool, int, float, str)
_SUPPORTED = (
    "bool, int, float, str, Literal of strings or ints, Duration, Secret, a frozen dataclass, "
    "list[T], tuple[T, ...], dict[str, T], T | None, or a union of these"
)


def kind_of(tp: Any) -> str | None:
    """Which of the supported types an unwrapped annotation is; None when it is none of them.

    One classifier for the registration check, `build`, type names and error labels, so they
    cannot disagree about what a `tuple[int, int]` is (none: only `tuple[T, ...]` is).
    """
    return next((kind for test, kind in _KINDS if test(tp)), None)


def _is_table(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


_KINDS: list[tuple[Callable[[Any], bool], str]] = [
    (lambda t: t in SCALARS, "scalar"),
    (lambda t: t is DURATION, "duration"),
    (lambda t: t is Secret, "secret"),
    (lambda t: get_origin(t) is Literal, "literal"),
    (_is_table, "table"),
    (lambda t: get_origin(t) is list and len(get_args(t)) == 1, "list"),
    (lambda t: get_origin(t) is tuple and get_args(t)[1:] == (Ellipsis,), "tuple"),
    (lambda t: get_origin(t) is dict and get_args(t)[:1] == (str,), "dict"),
    (lambda t: get_origin(t) in (types.UnionType, typing.Union), "union"),
]


def item_type(tp: Any) -> Any:
    """The item type of a list or tuple, the value type of a dict."""
    return get_args(tp)[-1 if get_origin(tp) is dict else 0]


def check_config_type(cls: object) -> None:
    """Raise TypeError naming the first field of dataclass `cls` that `build` cannot fill.

    It takes any object because a registry hands it whatever a component called `Config`.
    """
    _check_table(cls, str(getattr(cls, "__qualname__", repr(cls))), set())


def _check_table(cls: Any, where: str, seen: set[type]) -> None:
    if not _is_table(cls):
        raise TypeError(f"config {where}: must be a dataclass, got {cls!r}")
    if cls in seen:  # a table that nests itself: checked once, filled only as deep as the TOML
        return
    seen.add(cls)
    if not cls.__dataclass_params__.frozen:
        raise TypeError(f"config {where}: {cls.__qualname__} must be @dataclass(frozen=True)")
    try:
        hints = get_type_hints(cls, include_extras=True)
    except Exception as exc:  # NameError, or whatever a bad string annotation raises
        raise TypeError(
            f"config {where}: cannot resolve its annotations ({exc}); a type a config names "
            "must exist when the component class is defined"
        ) from None
    for f in dataclasses.fields(cls):
        _check(hints[f.name], f"{where}.{f.name}", seen, field=True)


def _check(hint: Any, where: str, seen: set[type], *, field: bool = False) -> None:
    base, rng, _ = unwrap(hint)
    kind = kind_of(base)
    if rng is not None and not _numeric(base):
        raise TypeError(f"config field {where}: Range bounds a number, not {type_name(base)}")
    if kind == "literal" and not all(type(a) in (str, int) for a in get_args(base)):
        raise TypeError(f"config field {where}: Literal values must be strings or ints")
    if kind == "table":
        _check_table(base, where, seen)
    elif kind in ("list", "tuple", "dict"):
        _check(item_type(base), f"{where}[]", seen)
    elif kind == "union":
        _check_union(base, where, seen, field=field)
    elif kind is None:
        origin = get_origin(base) or base
        hint_text = {list: "list[T]", tuple: "tuple[T, ...]", dict: "dict[str, T]"}.get(origin)
        say = f"; say {hint_text}" if hint_text else ""
        raise TypeError(
            f"config field {where}: {_show(base)} is not supported{say} (supported: {_SUPPORTED})"
        )


def _check_union(tp: Any, where: str, seen: set[type], *, field: bool) -> None:
    members = get_args(tp)
    if NoneType in members and not field:
        raise TypeError(
            f"config field {where}: None can only mean an absent key, so `| None` belongs on a "
            "field, not inside a list or dict (TOML has no null)"
        )
    shapes: list[str] = []
    for m in members:
        if m is NoneType:
            continue
        _check(m, where, seen)
        shape = {
            "table": "table",
            "dict": "table",
            "secret": "table",
            "list": "list",
            "tuple": "list",
        }.get(kind_of(unwrap(m)[0]) or "", "scalar")
        if shape != "scalar" and shape in shapes:
            raise TypeError(
                f"config field {where}: a union may hold one {shape} type at most, "
                "or its errors could not say which was meant"
            )
        shapes.append(shape)


def _numeric(tp: Any) -> bool:
    if tp in (int, float) or tp is DURATION:
        return True
    return kind_of(tp) == "union" and any(_numeric(unwrap(m)[0]) for m in get_args(tp))


def is_optional(hint: Any) -> bool:
    """Whether the field may be absent: `T | None`, possibly inside `Annotated`."""
    base = unwrap(hint)[0]
    return kind_of(base) == "union" and NoneType in get_args(base)


_NAMES: dict[str, Callable[[Any], str]] = {
    "scalar": lambda t: str(t.__name__),
    "duration": lambda t: "duration",
    "secret": lambda t: "secret",
    "literal": lambda t: "|".join(repr(a) for a in get_args(t)),
    "table": lambda t: "table",
    "list": lambda t: f"list[{type_name(item_type(t))}]",
    "tuple": lambda t: f"tuple[{type_name(item_type(t))}, ...]",
    "dict": lambda t: f"dict[str, {type_name(item_type(t))}]",
    "union": lambda t: " | ".join(type_name(a) for a in get_args(t)),
}


def type_name(tp: Any) -> str:
    """The type as `ingestd stages` prints it: `list[str]`, `int | None`, `duration`, `table`."""
    base = unwrap(tp)[0]
    kind = kind_of(base)
    if kind is None:
        return "None" if base is NoneType else _show(base)
    return _NAMES[kind](base)


_SCALAR_LABELS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
_LABELS: dict[str, Callable[[Any], str]] = {
    "scalar": lambda t: _SCALAR_LABELS[t],
    "duration": lambda t: DURATION_HELP,
    "secret": lambda t: SECRET_HELP,
    "literal": lambda t: "one of " + ", ".join(repr(a) for a in get_args(t)),
    "table": lambda t: "a table",
    "list": lambda t: "a list",
    "tuple": lambda t: "a list",
    "dict": lambda t: "a table",
    "union": lambda t: _either([type_label(m) for m in get_args(t) if m is not NoneType]),
}


def type_label(tp: Any) -> str:
    """The type as an error says what was expected: `an integer`, `a list`, `a duration (...)`."""
    base = unwrap(tp)[0]
    kind = kind_of(base)
    return type_name(base) if kind is None else _LABELS[kind](base)


def _either(labels: list[str]) -> str:
    return ", ".join(labels[:-1]) + " or " + labels[-1] if len(labels) > 1 else labels[0]


def _show(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) and not get_args(tp) else repr(tp)
