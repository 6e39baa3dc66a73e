"""`ingestd stages --markdown`: the component reference as Markdown (docs/COMPONENTS.md).

Why generated: a reference typed by hand goes stale the first time someone adds a key. This one
is the manifest (`manifest.py`: the registry, each class's docstring, each `Config`'s
annotations) rendered, and a test compares the committed file with what this prints, so the
docs change in the same commit as the code or the suite fails.

Each component gets a heading (`source: file`, anchor `#source-file`), its whole docstring as
text, and a table of its keys; the keys every sink has (retry, breaker, spool, `kinds`) are one
table at the end, sub-tables flattened to their dotted names (`retry.attempts`) as a TOML file
writes them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from typing import Any

from daemon.config.fields import FieldInfo, field_infos
from daemon.config.loader import SinkResilience
from daemon.config.types import Secret

_CODE_SPAN = re.compile(r"(`[^`]*`)")
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")  # what CommonMark would read as HTML (not `<=`)
_TITLES = {"source": "Sources", "stage": "Stages", "sink": "Sinks"}
_SINK_KEYS_ANCHOR = "keys-every-sink-has"

INTRO = """\
Every source, stage and sink that ships with ingestd, and its keys. Generated from the
components' docstrings and config classes by `ingestd stages --markdown --builtin` (do not edit
by hand: a test fails when this file differs from that output). On an installation with plugins,
`ingestd stages --markdown` documents them too.

A key without a default is required; "absent" means the key may be left out (TOML has no null).
Durations take a number of seconds or a string such as `"250ms"`, `"5s"`, `"2m"`; secrets take a
string, `{ env = "NAME" }` or `{ file = "/path" }` and are never printed."""


def render_markdown(entries: list[dict[str, Any]]) -> str:
    """The reference for `entries` (`manifest()`'s, possibly filtered), ending in a newline."""
    out = ["# Component reference", "", INTRO, ""]
    for kind, title in _TITLES.items():
        mine = [e for e in entries if e["kind"] == kind]
        if mine:
            links = ", ".join(f"[`{e['name']}`](#{kind}-{e['name']})" for e in mine)
            out.append(f"- {title}: {links}")
    if any(e["kind"] == "sink" for e in entries):
        out.append(f"- [The keys every sink has](#{_SINK_KEYS_ANCHOR})")
    for kind, title in _TITLES.items():
        mine = [e for e in entries if e["kind"] == kind]
        if not mine:
            continue
        out += ["", f"## {title}"]
        for e in mine:
            out += ["", f"### {kind}: `{e['name']}`", ""]
            if e["doc"]:
                out += [_text(e["doc"]), ""]
            out += _key_table(e["params"])
    if any(e["kind"] == "sink" for e in entries):
        out += ["", "## The keys every sink has", ""]
        out.append("Besides its own keys, every `[[sinks]]` table takes these:")
        out.append("")
        out += _key_table([_param(info) for info in _flattened(field_infos(SinkResilience))])
    return "\n".join(out).rstrip() + "\n"


def _key_table(params: list[dict[str, Any]]) -> list[str]:
    if not params:
        return ["No keys."]
    rows = ["| key | type | default | doc |", "|---|---|---|---|"]
    for p in params:
        kind = f"`{p['type']}`" + (f" ({p['bounds']})" if p["bounds"] else "")
        default = "required" if p["required"] else _default(p)
        cells = (f"`{p['name']}`", kind, default, _text(p["doc"]))
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return rows


def _flattened(infos: list[FieldInfo], prefix: str = "") -> list[FieldInfo]:
    """Sub-tables (a dataclass default) as their own keys: `retry` becomes `retry.attempts`..."""
    out: list[FieldInfo] = []
    for info in infos:
        if dataclasses.is_dataclass(info.default) and not isinstance(info.default, type):
            out += _flattened(field_infos(type(info.default)), f"{prefix}{info.name}.")
        else:
            out.append(dataclasses.replace(info, name=prefix + info.name))
    return out


def _param(info: FieldInfo) -> dict[str, Any]:
    """A `FieldInfo` in the shape of the manifest's params."""
    return {
        "name": info.name,
        "type": info.type_name,
        "default": info.default,
        "required": info.required,
        "bounds": info.bounds,
        "doc": info.doc,
    }


def _default(param: dict[str, Any]) -> str:
    value = param["default"]
    if value is None:
        return "absent"
    if param["type"] == "float" and value in ("inf", "-inf", "nan"):
        return f"`{value}`"  # the manifest's JSON names a non-finite float (JSON has no inf)
    return f"`{_toml(value)}`"


def _toml(value: Any) -> str:
    """A default as it would be written in TOML."""
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return _toml_scalar(value)


def _toml_scalar(value: Any) -> str:
    if isinstance(value, Secret):
        return '"***"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return repr(value) if isinstance(value, int | float) else str(value)


def _text(text: str) -> str:
    """Prose as Markdown shows it: outside code spans, a `<` before a letter would start an
    HTML tag (and `<prefix>` vanish from the page), so it is escaped there."""
    parts = _CODE_SPAN.split(text)
    return "".join(p if p.startswith("`") else _TAG_START.sub("&lt;", p) for p in parts)


def _cell(text: str) -> str:
    """Table-safe: a `|` would end the cell (escaped, it still shows inside code spans)."""
    return text.replace("|", "\\|").replace("\n", " ")
