"""Components register by name; the config's `type` string looks them up.

A component is one class: a subclass of `Source`, `Stage` or `Sink` (see `daemon.components`)
declared with `name="..."` and a frozen `Config` dataclass. `__init_subclass__` puts it here;
third-party packages do the same and expose their module in the `ingestd.plugins` entry-point
group so it is imported before the config is read. Each class is checked structurally against its
`typing.Protocol` at registration, before any data flows.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Literal

Kind = Literal["source", "stage", "sink"]
KINDS: tuple[Kind, ...] = ("source", "stage", "sink")
_BUILTIN_PACKAGES = ("daemon.sources", "daemon.stages", "daemon.sinks")


class RegistryError(Exception):
    """A component that cannot be registered: a name taken twice, a missing method, or a `Config`
    field type the config layer cannot fill from TOML (found at import, not at a user's load)."""


@dataclass(frozen=True)
class Entry:
    kind: Kind
    name: str
    cls: type[Any]

    @property
    def doc(self) -> str:
        return (self.cls.__doc__ or "").strip().splitlines()[0] if self.cls.__doc__ else ""


class Registry:
    def __init__(self) -> None:
        self._entries: dict[tuple[Kind, str], Entry] = {}
        self._loaded = False

    def add(self, kind: Kind, name: str, cls: type[Any], protocol: type[Any]) -> None:
        key = (kind, name)
        existing = self._entries.get(key)
        if existing is not None and existing.cls is not cls:
            if existing.cls.__qualname__ == cls.__qualname__ and (
                existing.cls.__module__ == cls.__module__
            ):
                pass  # the same class re-imported (e.g. by a test re-loading a module)
            else:
                raise RegistryError(f"{kind} {name!r} registered twice: {existing.cls} and {cls}")
        methods = getattr(protocol, "__protocol_attrs__", None) or _protocol_methods(protocol)
        missing = [m for m in sorted(methods) if _unimplemented(cls, m)]
        if missing:
            raise RegistryError(f"{kind} {name!r} ({cls.__qualname__}) lacks {missing}")
        config = getattr(cls, "Config", None)
        if config is None or not dataclasses.is_dataclass(config):
            raise RegistryError(f"{kind} {name!r} needs a dataclass `Config`")
        from daemon.config.schema import check_config_type  # noqa: PLC0415 - import cycle

        try:
            check_config_type(config)
        except TypeError as exc:
            raise RegistryError(f"{kind} {name!r} ({cls.__qualname__}): {exc}") from None
        self._entries[key] = Entry(kind, name, cls)

    def get(self, kind: Kind, name: str) -> Entry | None:
        self.load()
        return self._entries.get((kind, name))

    def names(self, kind: Kind) -> list[str]:
        self.load()
        return sorted(n for k, n in self._entries if k == kind)

    def __iter__(self) -> Iterator[Entry]:
        self.load()
        return iter(sorted(self._entries.values(), key=lambda e: (KINDS.index(e.kind), e.name)))

    def load(self) -> None:
        """Import the built-in component packages and every `ingestd.plugins` entry point."""
        if self._loaded:
            return
        self._loaded = True
        for package in _BUILTIN_PACKAGES:
            _import_tree(package)
        for ep in entry_points(group="ingestd.plugins"):
            ep.load()


def _import_tree(package: str) -> None:
    """Import `package` and every module below it: a built-in component registers by being
    there, with no import list to keep."""
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        importlib.import_module(info.name)


def _unimplemented(cls: type[Any], method: str) -> bool:
    """Absent, not callable, or still the base class's placeholder."""
    attr = getattr(cls, method, None)
    return not callable(attr) or bool(getattr(attr, "__ingestd_required__", False))


def _protocol_methods(protocol: type[Any]) -> list[str]:
    return [
        n for n in vars(protocol) if not n.startswith("_") and callable(getattr(protocol, n, None))
    ]


REGISTRY = Registry()
