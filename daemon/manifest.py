"""`ingestd stages`: every registered component with its parameters, built from the registry and
`inspect.signature` of each component's `Config`, never written by hand.

Each entry carries the class's whole docstring (`doc`), not only its first line: the docstring
is where a component says what it emits and why, and a first line cut mid-sentence says
neither. `reference.py` renders the same entries as Markdown (docs/COMPONENTS.md)."""

from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Any

from daemon.config.fields import field_infos
from daemon.config.loader import SinkResilience
from daemon.config.types import Secret
from daemon.registry import REGISTRY


def manifest() -> list[dict[str, Any]]:
    out = []
    for entry in REGISTRY:
        sig = inspect.signature(entry.cls.Config)
        infos = {i.name: i for i in field_infos(entry.cls.Config)}
        params = []
        for name in sig.parameters:
            info = infos[name]
            params.append(
                {
                    "name": name,
                    "type": info.type_name,
                    "default": None if info.required else _plain(info.default),
                    "required": info.required,
                    "bounds": info.bounds,
                    "doc": info.doc,
                }
            )
        out.append(
            {
                "kind": entry.kind,
                "name": entry.name,
                "doc": full_doc(entry.cls),
                "module": entry.cls.__module__,
                "params": params,
            }
        )
    return out


def full_doc(cls: type) -> str:
    """The class's own docstring, dedented (empty when it has none; never a base class's)."""
    doc = cls.__dict__.get("__doc__")
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


def builtin(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries of components that ship with ingestd (not plugins, not tests' own)."""
    return [e for e in entries if e["module"].split(".")[0] == "daemon"]


def _plain(value: Any) -> Any:
    """A default as JSON can hold it: a secret masked, tuples as lists, a table as its keys,
    and a non-finite float as its name (JSON has no inf)."""
    if isinstance(value, Secret) or (isinstance(value, float) and not math.isfinite(value)):
        return str(value)
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return str(value)


def render_manifest(entries: list[dict[str, Any]]) -> str:
    """Per component: `kind name: <the docstring's first paragraph, on one line>`, its keys,
    then the rest of the docstring, indented. The summary and the keys come first, as a reader
    scans for them (and as `grep -A` shows them); the explanation follows."""
    lines: list[str] = []
    for e in entries:
        summary, rest = _split_doc(e["doc"])
        lines.append(f"{e['kind']} {e['name']}: {summary}".rstrip())
        for p in e["params"]:
            default = "required" if p["required"] else f"= {p['default']!r}"
            bounds = f" [{p['bounds']}]" if p["bounds"] else ""
            doc = f"  # {p['doc']}" if p["doc"] else ""
            lines.append(f"    {p['name']}: {p['type']} {default}{bounds}{doc}")
        if e["kind"] == "sink":
            lines.append("    (plus the keys every sink has:)")
            for info in field_infos(SinkResilience):
                lines.append(f"    {info.name}: {info.type_name} = {_plain(info.default)!r}")
        if rest:
            lines.append("")
            lines.extend(f"    {line}".rstrip() for line in rest)
        lines.append("")
    return "\n".join(lines).rstrip()


def _split_doc(doc: str) -> tuple[str, list[str]]:
    """The first paragraph joined into one line, and the lines after it (blank ones trimmed)."""
    lines = doc.splitlines()
    end = lines.index("") if "" in lines else len(lines)
    summary = " ".join(line.strip() for line in lines[:end])
    rest = lines[end:]
    while rest and not rest[0].strip():
        rest = rest[1:]
    return summary, rest
