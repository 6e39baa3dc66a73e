"""A config type `build` cannot fill is refused when the component registers, naming the field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field, make_dataclass
from typing import Annotated, Any, Literal, Protocol

import pytest

from daemon.config import Duration, Range, Secret, check_config_type
from daemon.config.loader import DaemonConfig, SinkResilience
from daemon.registry import REGISTRY, Registry, RegistryError
from tests.config_connector import SINK, SOURCE, ConnectorConfig, registered_connector


@dataclass(frozen=True)
class TableA:
    a: int = 0


@dataclass(frozen=True)
class TableB:
    b: int = 0


@dataclass
class Mutable:
    x: int = 0


def config_with(tp: Any) -> type:
    return make_dataclass("Config", [("field_x", tp)], frozen=True)


@pytest.mark.parametrize(
    ("tp", "fragment"),
    [
        (set[int], "set[int] is not supported"),
        (bytes, "bytes is not supported"),
        (dict[int, str], "dict[int, str] is not supported; say dict[str, T]"),
        (list, "list is not supported; say list[T]"),
        (dict, "is not supported; say dict[str, T]"),
        (Any, "Any is not supported"),
        (tuple[int, int], "is not supported; say tuple[T, ...]"),
        (list[set[str]], "set[str] is not supported"),
        (dict[str, bytes], "bytes is not supported"),
        (list[int | None], "None can only mean an absent key"),
        (Annotated[list[int], Range(ge=1)], "Range bounds a number, not list[int]"),
        (Annotated[str, Range(ge=1)], "Range bounds a number, not str"),
        (Literal[1.5], "Literal values must be strings or ints"),
        (TableA | TableB, "a union may hold one table type at most"),
        (list[int] | tuple[str, ...], "a union may hold one list type at most"),
        (dict[str, int] | Secret, "a union may hold one table type at most"),
        (Mutable, "Mutable must be @dataclass(frozen=True)"),
        (list[Mutable], "must be @dataclass(frozen=True)"),
        (type(None), "NoneType is not supported"),
    ],
)
def test_unsupported_annotations_are_refused_with_the_field_named(tp: Any, fragment: str) -> None:
    with pytest.raises(TypeError) as info:
        check_config_type(config_with(tp))
    assert "Config.field_x" in str(info.value)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "tp",
    [
        bool,
        int,
        float,
        str,
        Literal["a", "b"],
        Duration,
        Secret,
        TableA,
        list[TableA],
        tuple[Annotated[int, Range(ge=1)], ...],
        dict[str, list[Duration]],
        str | None,
        Annotated[int | None, Range(ge=1)],
        int | str | list[int] | TableA,
        Annotated[Duration | None, Range(gt=0)],
    ],
)
def test_supported_annotations_pass(tp: Any) -> None:
    check_config_type(config_with(tp))


def test_the_configs_in_use_pass() -> None:
    for cls in (DaemonConfig, SinkResilience, ConnectorConfig):
        check_config_type(cls)
    for entry in REGISTRY:
        check_config_type(entry.cls.Config)


def test_a_table_that_nests_itself_is_checked_once() -> None:
    check_config_type(Tree)


@dataclass(frozen=True)
class Tree:
    children: tuple[Tree, ...] = ()


def test_an_annotation_that_does_not_resolve_is_refused() -> None:
    """A config naming a class defined below the component fails at registration, not load."""
    with pytest.raises(TypeError, match=r"Config: cannot resolve its annotations \(name 'Later"):
        check_config_type(config_with("LaterTls"))


def test_not_a_dataclass() -> None:
    with pytest.raises(TypeError, match="must be a dataclass"):
        check_config_type(int)


class _Stage(Protocol):
    def process(self, batches: AsyncIterator[Any]) -> AsyncIterator[Any]: ...


def test_registering_a_component_with_a_bad_config_type_fails() -> None:
    class Bad:
        @dataclass(frozen=True)
        class Config:
            ok: int = 1
            tags: set[str] = field(default_factory=set)

        def process(self, batches: AsyncIterator[Any]) -> AsyncIterator[Any]:
            return batches

    registry = Registry()  # a private one: nothing registered here reaches other tests
    with pytest.raises(RegistryError) as info:
        registry.add("stage", "bad_tags", Bad, _Stage)
    message = str(info.value)
    assert message.startswith("stage 'bad_tags' (")
    assert "Config.tags: set[str] is not supported" in message
    assert registry._entries == {}


def test_the_test_connector_is_registered_only_inside_its_block() -> None:
    assert REGISTRY.get("source", SOURCE) is None
    with registered_connector():
        assert REGISTRY.get("source", SOURCE) is not None
        assert REGISTRY.get("sink", SINK) is not None
    assert REGISTRY.get("source", SOURCE) is None
    assert REGISTRY.get("sink", SINK) is None
    assert "simulated" in REGISTRY.names("source")
