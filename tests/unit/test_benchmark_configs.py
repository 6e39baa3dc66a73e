"""The config generator the benchmarks and tests share: its TOML reads back as the dicts it was
given, and its default chain is the embedded default config's."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks import configs
from daemon.cli import default_config_path
from daemon.config import parse_config

keys = st.text(min_size=1, max_size=12)
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
values = st.one_of(scalars, st.lists(scalars, max_size=4))


def tables(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    children: st.SearchStrategy[Any] = values
    if depth:
        sub = tables(depth - 1)
        children = st.one_of(values, sub, st.lists(sub, min_size=1, max_size=3))
    return st.dictionaries(keys, children, max_size=5)


@given(tables(2))
def test_rendered_toml_reads_back_as_the_same_dicts(doc: dict[str, Any]) -> None:
    assert tomllib.loads(configs.render(doc)) == doc


def test_non_finite_floats_and_escapes_round_trip() -> None:
    doc = {"a": math.inf, "b": -math.inf, "c": 'q"\\\n\t\x7f\x00é', "key with space": 1}
    back = tomllib.loads(configs.render(doc))
    assert back == doc
    assert math.isnan(tomllib.loads(configs.render({"n": math.nan}))["n"])


def test_unsupported_values_are_refused() -> None:
    with pytest.raises(TypeError, match="cannot render"):
        configs.render({"x": None})


def test_the_default_chain_is_the_embedded_defaults() -> None:
    with default_config_path().open("rb") as f:
        stages = tomllib.load(f)["stages"]
    assert configs.default_stages() == stages
    assert configs.default_chain() == [s for s in stages if s["type"] != "features"]
    assert [s["type"] for s in configs.default_chain()] == [
        "threshold_filter",
        "normalize",
        "moving_average",
    ]
    assert configs.features(workers=1) == {"type": "features", "window": 256, "workers": 1}
    configs.default_chain()[0]["min"] = -1.0  # a caller's copy: the next one is untouched
    assert configs.default_chain()[0]["min"] == 10.0


def test_a_generated_config_is_one_the_daemon_accepts(tmp_path: Path) -> None:
    doc = {
        "daemon": {"dead_letter": str(tmp_path / "dead.jsonl"), "http": {"port": 0}},
        "sources": [{"type": "simulated", "sensors": 2}],
        "stages": [*configs.default_chain(), configs.features(workers=0)],
        "sinks": [{"type": "jsonl", "path": str(tmp_path / "o"), "retry": {"attempts": 2}}],
    }
    cfg = parse_config(configs.render(doc))
    assert [s.cls.name for s in cfg.stages] == [
        "threshold_filter",
        "normalize",
        "moving_average",
        "features",
    ]
