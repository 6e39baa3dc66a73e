"""The three component kinds: the protocols they satisfy and the bases that register them.

Write a component as one class:

    class Clamp(Stage, name="clamp"):
        '''Clamps values into [lo, hi].'''

        @dataclass(frozen=True)
        class Config:
            lo: Annotated[float, "lowest value kept"] = 0.0
            hi: Annotated[float, "highest value kept"] = 1.0

        async def process(self, batches):
            async for batch in batches:
                batch.value = batch.value.clip(self.config.lo, self.config.hi)
                yield batch

The base gives `__init__(config, ctx)`, `open()` and `close()`; subclasses override what they need.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from daemon.batch import Batch
from daemon.registry import REGISTRY, Kind
from daemon.runtime import ComponentContext


@runtime_checkable
class SourceProtocol(Protocol):
    def stream(self) -> AsyncIterator[Batch]:
        """Yield batches until exhausted or until `ctx.state.stop` is set."""
        ...


@runtime_checkable
class StageProtocol(Protocol):
    def process(self, batches: AsyncIterator[Batch]) -> AsyncIterator[Batch]:
        """Transform a stream of batches; must pass every reading on or count it `filtered`."""
        ...


@runtime_checkable
class SinkProtocol(Protocol):
    async def write(self, batch: Batch) -> None:
        """Deliver one batch durably or raise (SinkError subclasses say whether to retry)."""
        ...

    async def flush(self) -> None: ...


_F = TypeVar("_F", bound=Callable[..., Any])


def required(method: _F) -> _F:
    """Marks a base-class placeholder that a registered component must override."""
    method.__ingestd_required__ = True  # type: ignore[attr-defined]
    return method


class Component:
    kind: ClassVar[Kind]
    name: ClassVar[str]
    protocol: ClassVar[type[Any]]
    Config: ClassVar[type[Any]]

    def __init_subclass__(cls, *, name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name is not None:
            cls.name = name
            REGISTRY.add(cls.kind, name, cls, cls.protocol)

    def __init__(self, config: Any, ctx: ComponentContext) -> None:
        self.config = config
        self.ctx = ctx

    async def open(self) -> None:
        """Acquire resources (files, connections, pools). Called before data flows."""

    async def close(self) -> None:
        """Release resources. Called once, after the last batch."""


class Source(Component):
    kind = "source"
    protocol = SourceProtocol

    @required
    def stream(self) -> AsyncIterator[Batch]:
        raise NotImplementedError


class Stage(Component):
    kind = "stage"
    protocol = StageProtocol

    @required
    def process(self, batches: AsyncIterator[Batch]) -> AsyncIterator[Batch]:
        raise NotImplementedError


class SinkError(Exception):
    """A sink write failed in a way a retry may fix (network, disk full, timeout)."""


class PermanentSinkError(SinkError):
    """The sink refuses these readings; no retry can fix it. They go to the dead-letter file."""


class Sink(Component):
    kind = "sink"
    protocol = SinkProtocol

    @required
    async def write(self, batch: Batch) -> None:
        raise NotImplementedError

    async def flush(self) -> None:
        """Make everything written so far durable (called per batch group and at shutdown)."""
