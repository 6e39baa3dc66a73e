"""Turn an `AppConfig` into live components, each with its own context label."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from daemon.components import Sink, Source, Stage
from daemon.config import AppConfig, ComponentSpec
from daemon.resilience import GuardedSink
from daemon.runtime import ComponentContext, Lifetime, RunState


@dataclass
class Components:
    sources: list[Source[Any]]
    stages: list[Stage[Any]]
    sinks: list[GuardedSink]


def build_components(config: AppConfig, state: RunState, lifetime: Lifetime) -> Components:
    """Instantiate every component of one generation. Nothing is opened, no loop is needed."""

    def make(spec: ComponentSpec) -> Any:
        return spec.cls(spec.config, ComponentContext(spec.label, spec.kind, state, lifetime))

    sinks: list[GuardedSink] = []
    for spec in config.sinks:
        sink: Sink[Any] = make(spec)
        assert spec.resilience is not None  # the loader fills it for every sink
        sinks.append(GuardedSink(sink, spec.resilience, state, lifetime))
    return Components([make(s) for s in config.sources], [make(s) for s in config.stages], sinks)
