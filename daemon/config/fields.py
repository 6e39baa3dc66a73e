"""Typed, bounded config objects built from TOML tables, with errors that name the key path.

A component's config is a frozen dataclass. Each field's annotation is its type, optionally
wrapped in `Annotated[T, Range(...), "one-line doc"]`; its default is the default. `build()` turns
a TOML table into an instance or records `ConfigIssue`s such as
`stages[1].window: must be >= 1, got 0`. The same annotations feed `ingestd stages`.

The types a field may have, and what TOML gives each:

- `bool`, `int`, `float`, `str`, and `Literal["a", "b"]` for an enum of strings;
- `Duration` (`5`, `"250ms"`, `"1.5m"`: a float of seconds) and `Secret` (a string,
  `{ env = "NAME" }` or `{ file = "/path" }`; masked when printed), from `daemon.config.types`;
- a frozen dataclass: a sub-table (`[sinks.tls]`);
- `list[T]` / `tuple[T, ...]`: an array, of tables too (`[[sources.routes]]`); a tuple keeps
  the config hashable;
- `dict[str, T]`: a table of free keys (per-topic mappings);
- `T | None`: optional, None when the key is absent; and unions (`int | str`), tried in order.

This module is the stable import point; the work is split over `core` (issues, bounds, paths),
`types` (Duration, Secret), `schema` (the registration check, type names) and `coerce` (build).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, get_args, get_origin, get_type_hints

from daemon.config.coerce import build
from daemon.config.core import ConfigError, ConfigIssue, Range, unwrap
from daemon.config.schema import check_config_type, is_optional, type_name

__all__ = [
    "ConfigError",
    "ConfigIssue",
    "FieldInfo",
    "Range",
    "build",
    "check_config_type",
    "field_infos",
]


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
        hint = hints[f.name]
        _, rng, doc = unwrap(hint)
        has_default = f.default is not dataclasses.MISSING or (
            f.default_factory is not dataclasses.MISSING
        )
        default: Any = None
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        out.append(
            FieldInfo(
                name=f.name,
                type_name=type_name(hint),
                default=default,
                doc=doc,
                bounds=rng.describe() if rng else _item_bounds(hint),
                required=not has_default and not is_optional(hint),
            )
        )
    return out


def _item_bounds(hint: Any) -> str:
    """`each >= 1` for `list[Annotated[int, Range(ge=1)]]` and the like."""
    base = unwrap(hint)[0]
    if get_origin(base) in (list, tuple, dict):
        rng = unwrap(get_args(base)[-1 if get_origin(base) is dict else 0])[1]
        if rng is not None:
            return f"each {rng.describe()}"
    return ""
