"""Turn an `AppConfig` into live components, each with its own context label."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from daemon.components import Sink, Source, Stage
from daemon.config import AppConfig, ComponentSpec
from daemon.resilience import GuardedSink
from daemon.runtime import ComponentContext, RunState


@dataclass
class Components:
    sources: list[Source]
    stages: list[Stage]
    sinks: list[GuardedSink]


def _make(spec: ComponentSpec, state: RunState) -> Any:
    return spec.cls(spec.config, ComponentContext(label=spec.label, state=state))


def build_components(config: AppConfig, state: RunState) -> Components:
    """Instantiate every component. Nothing is opened and no loop is needed yet."""
    sources: list[Source] = [_make(s, state) for s in config.sources]
    stages: list[Stage] = [_make(s, state) for s in config.stages]
    sinks: list[GuardedSink] = []
    for spec in config.sinks:
        sink: Sink = _make(spec, state)
        assert spec.resilience is not None  # the loader fills it for every sink
        sinks.append(
            GuardedSink(sink, spec.resilience, ComponentContext(label=spec.label, state=state))
        )
    return Components(sources, stages, sinks)
