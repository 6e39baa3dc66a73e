"""The three component kinds: the protocols they satisfy and the generic bases that register them.

Write a component as one config dataclass and one class:

    @dataclass(frozen=True)
    class ClampConfig:
        lo: Annotated[float, "lowest value kept"] = 0.0
        hi: Annotated[float, "highest value kept"] = 1.0

    class Clamp(Stage[ClampConfig], name="clamp"):
        '''Clamps values into [lo, hi].'''

        async def process(self, batches):
            async for batch in batches:
                batch.value = batch.value.clip(self.config.lo, self.config.hi)
                yield batch

`self.config` is a `ClampConfig` to the type checker; the registry takes the config class from
the generic argument (a nested `class Config` works too). The base gives `__init__(config, ctx)`,
`open()` and `close()`; subclasses override what they need. What a component can do beyond its
protocol is declared as a class flag on the base (`Sink.wants_wire_bytes`), never sniffed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar, Generic, Protocol, TypeVar, get_args, get_origin
from typing import runtime_checkable as _runtime_checkable

from daemon.batch import RECORD_KINDS, Batch
from daemon.registry import REGISTRY, Kind
from daemon.runtime import ComponentContext

ConfigT = TypeVar("ConfigT")


@_runtime_checkable
class SourceProtocol(Protocol):
    def stream(self) -> AsyncIterator[Batch]:
        """Yield batches until exhausted or until `ctx.stop` is set."""
        ...


@_runtime_checkable
class StageProtocol(Protocol):
    def process(self, batches: AsyncIterator[Batch]) -> AsyncIterator[Batch]:
        """Transform a stream of batches; must pass every reading on or count it `filtered`."""
        ...


@_runtime_checkable
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


def _config_argument(cls: type) -> type | None:
    """The config class named by `class X(Stage[XConfig])`, if the class says one."""
    for base in getattr(cls, "__orig_bases__", ()):
        origin = get_origin(base)
        if isinstance(origin, type) and issubclass(origin, Component):
            args = get_args(base)
            if args and isinstance(args[0], type):
                return args[0]
    return None


class Component(Generic[ConfigT]):
    kind: ClassVar[Kind]
    name: ClassVar[str]
    protocol: ClassVar[type[Any]]
    Config: ClassVar[type[Any]]

    def __init_subclass__(cls, *, name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        config = _config_argument(cls)
        if config is not None and "Config" not in cls.__dict__:
            cls.Config = config
        if name is not None:
            cls.name = name
            REGISTRY.add(cls.kind, name, cls, cls.protocol)

    def __init__(self, config: ConfigT, ctx: ComponentContext) -> None:
        self.config: ConfigT = config
        self.ctx = ctx

    async def open(self) -> None:
        """Acquire resources (files, connections, pools). Called before data flows."""

    async def close(self) -> None:
        """Release resources. Called once, after the last batch."""


class Source(Component[ConfigT]):
    kind = "source"
    protocol = SourceProtocol

    @required
    def stream(self) -> AsyncIterator[Batch]:
        raise NotImplementedError

    def checkpoint(self, batch: Batch) -> object | None:
        """Called as each yielded `batch` enters the pipeline: what to hand back to `taken()`
        once every reading of it is durably taken (a file position, the messages to ack).
        None (the default): this source does not need to know."""
        return None

    def taken(self, mark: object) -> None:
        """`mark`'s batch is durably taken: written by every sink, spooled and fsynced,
        dead-lettered or filtered. Called in the order the batches were yielded, at most once
        each; never for a batch still in flight at a forced exit. Save what identifies the
        position here (`ctx.persist`), ack broker messages here."""


class Stage(Component[ConfigT]):
    kind = "stage"
    protocol = StageProtocol
    # Capability: this stage may yield part of an input batch and keep the rest for a later
    # yield (a re-batcher, a reorder buffer). Then a delivered batch proves only the batches
    # before it taken, and a source's acks wait one batch longer (daemon/topology/receipts.py).
    # A stage that yields each input batch whole (filtered, transformed, merged) leaves it False.
    holds_parts: ClassVar[bool] = False

    @required
    def process(self, batches: AsyncIterator[Batch]) -> AsyncIterator[Batch]:
        raise NotImplementedError


class SinkError(Exception):
    """A sink write failed in a way a retry may fix (network, disk full, timeout)."""


class PermanentSinkError(SinkError):
    """The sink refuses these readings; no retry can fix it. They go to the dead-letter file."""


class RowsRefused(PermanentSinkError):
    """The sink wrote the batch except these rows, which it refuses for good: `refused` maps a
    row's index in the batch to the reason. Raise it only once the others are durably written
    (flushed): the guard treats the write as done (no retry, no breaker failure), and only the
    refused rows are dead-lettered and counted `rejected`, the rest `written`. A
    `PermanentSinkError`, so that code knowing only whole-batch refusals still loses nothing."""

    def __init__(self, refused: dict[int, str]) -> None:
        first = next(iter(refused.values()), "")
        super().__init__(f"{len(refused)} row(s) refused, the first: {first}")
        self.refused = refused


class Sink(Component[ConfigT]):
    kind = "sink"
    protocol = SinkProtocol
    # Capability: batches reach `write` with their JSON-lines bytes already encoded by the
    # encoder child process (`daemon.wire.ahead`); an instance may turn it off by its config.
    wants_wire_bytes: ClassVar[bool] = False
    # What it can store, of `batch.RECORD_KINDS`: a sink's `kinds` key chooses among these
    # (absent: all of them), so it is handed only readings and derived records of its kinds.
    stores: ClassVar[frozenset[str]] = frozenset(RECORD_KINDS)

    def uses_wire_bytes(self) -> bool:
        """Whether this instance takes pre-encoded bytes (the class flag, unless configured off)."""
        return self.wants_wire_bytes

    @required
    async def write(self, batch: Batch) -> None:
        raise NotImplementedError

    async def flush(self) -> None:
        """Make everything written so far durable (called per batch group and at shutdown)."""
