"""Components register by name, are checked structurally, and document themselves."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import pytest

from daemon.batch import Batch
from daemon.cli import main
from daemon.components import Stage
from daemon.config import Range, parse_config
from daemon.manifest import manifest
from daemon.registry import REGISTRY, RegistryError
from daemon.runtime import ComponentContext


@dataclass(frozen=True)
class ClampConfig:
    lo: Annotated[float, "lowest value kept"] = 0.0
    hi: Annotated[float, Range(le=1000), "highest value kept"] = 1.0


class Clamp(Stage[ClampConfig], name="test_clamp"):
    """Clamps values into [lo, hi]."""

    async def process(self, batches: AsyncIterator[Batch]) -> AsyncIterator[Batch]:
        async for batch in batches:
            batch.value = batch.value.clip(self.config.lo, self.config.hi)
            yield batch


def test_builtins_are_registered() -> None:
    assert {"simulated", "file"} <= set(REGISTRY.names("source"))
    assert {"threshold_filter", "normalize", "moving_average", "features"} <= set(
        REGISTRY.names("stage")
    )
    assert {"jsonl", "console"} <= set(REGISTRY.names("sink"))


def test_a_new_stage_is_one_class_usable_from_config() -> None:
    cfg = parse_config(
        """
[[sources]]
type = "simulated"
sensors = 1
rate_hz = 1
[[stages]]
type = "test_clamp"
hi = 5.0
[[sinks]]
type = "console"
"""
    )
    assert cfg.stages[0].cls is Clamp
    assert cfg.stages[0].config == Clamp.Config(lo=0.0, hi=5.0)


def test_a_component_missing_its_method_is_refused_at_registration() -> None:
    with pytest.raises(RegistryError, match="lacks \\['process'\\]"):

        class Broken(Stage[Any], name="test_broken"):
            @dataclass(frozen=True)
            class Config:
                pass


def test_manifest_comes_from_the_config_signature() -> None:
    (entry,) = [e for e in manifest() if e["name"] == "test_clamp"]
    assert entry["doc"] == "Clamps values into [lo, hi]."
    assert entry["params"] == [
        {
            "name": "lo",
            "type": "float",
            "default": 0.0,
            "required": False,
            "bounds": "",
            "doc": "lowest value kept",
        },
        {
            "name": "hi",
            "type": "float",
            "default": 1.0,
            "required": False,
            "bounds": "<= 1000",
            "doc": "highest value kept",
        },
    ]


def test_stages_command_prints_every_component(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stages", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    names = {(e["kind"], e["name"]) for e in entries}
    assert ("stage", "normalize") in names
    normalize = next(e for e in entries if e["name"] == "normalize")
    assert any(
        p["name"] == "window" and p["bounds"].startswith(">= 1") for p in normalize["params"]
    )
    assert main(["stages"]) == 0
    text = capsys.readouterr().out
    assert "stage normalize:" in text
    assert "retry: table" in text


def test_the_config_class_comes_from_the_generic_argument_and_types_self_config() -> None:
    entry = REGISTRY.get("stage", "test_clamp")
    assert entry is not None and entry.cls.Config is ClampConfig
    clamp = Clamp(ClampConfig(lo=1.0), ComponentContext.standalone())
    assert clamp.config.lo == 1.0


def test_every_builtin_is_found_by_walking_the_packages_not_by_a_list() -> None:
    import daemon.sinks  # noqa: PLC0415 - the point is what the package itself imports
    import daemon.sources  # noqa: PLC0415
    import daemon.stages  # noqa: PLC0415

    for package in (daemon.sources, daemon.stages, daemon.sinks):
        assert not [n for n in vars(package) if n[0].isupper()], "no hand-kept import list"
    assert {"jsonl", "console", "blackhole"} <= set(REGISTRY.names("sink"))
    assert {"threshold_filter", "normalize", "moving_average", "features"} <= set(
        REGISTRY.names("stage")
    )


def test_capabilities_are_declared_on_the_class() -> None:
    jsonl = REGISTRY.get("sink", "jsonl")
    console = REGISTRY.get("sink", "console")
    assert jsonl is not None and jsonl.cls.wants_wire_bytes is True
    assert console is not None and console.cls.wants_wire_bytes is False
