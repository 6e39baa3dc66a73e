"""`ingestd stages`: every registered component with its parameters, built from the registry and
`inspect.signature` of each component's `Config`, never written by hand."""

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
        out.append({"kind": entry.kind, "name": entry.name, "doc": entry.doc, "params": params})
    return out


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
    lines: list[str] = []
    for e in entries:
        lines.append(f"{e['kind']} {e['name']}: {e['doc']}")
        for p in e["params"]:
            default = "required" if p["required"] else f"= {p['default']!r}"
            bounds = f" [{p['bounds']}]" if p["bounds"] else ""
            doc = f"  # {p['doc']}" if p["doc"] else ""
            lines.append(f"    {p['name']}: {p['type']} {default}{bounds}{doc}")
        if e["kind"] == "sink":
            lines.append("    (plus the keys every sink has:)")
            for info in field_infos(SinkResilience):
                lines.append(f"    {info.name}: {info.type_name} = {_plain(info.default)!r}")
        lines.append("")
    return "\n".join(lines).rstrip()
