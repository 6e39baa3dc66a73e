"""What tests need to drive one component outside a daemon run: its context, with the levers
the supervisor would pull (the run state, the stop and force tokens, a reload's new tokens)."""

from __future__ import annotations

import time
from collections.abc import Callable

from daemon.counters import Counters
from daemon.registry import Kind
from daemon.runtime import ComponentContext, Lifetime, RunState, Token


def _kind_of(label: str) -> Kind:
    if label.startswith("sources["):
        return "source"
    return "sink" if label.startswith("sinks[") else "stage"


class TestContext(ComponentContext):
    """A `ComponentContext` whose run state and lifetime the test holds."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(
        self,
        label: str = "test",
        dead_letter: str = "dead-letter.jsonl",
        kind: Kind | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        state_dir: str | None = None,
    ) -> None:
        self.state = RunState.fresh(dead_letter, state_dir)
        self.lifetime = Lifetime()
        super().__init__(label, kind or _kind_of(label), self.state, self.lifetime, clock=clock)

    @property
    def counters(self) -> Counters:
        return self.state.counters

    def new_generation(self) -> None:
        """What a reload does: fresh stop/force tokens, the same carried state and counters."""
        self.lifetime = Lifetime()
        self.stop = Token(self.lifetime.stop)
        self.force = Token(self.lifetime.force)


def levers(component: object) -> TestContext:
    """The test context a component under test was built with."""
    ctx = getattr(component, "ctx", None)
    assert isinstance(ctx, TestContext), "build the component with a TestContext"
    return ctx
