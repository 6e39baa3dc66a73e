"""The component reference: `ingestd stages` prints whole docstrings, `--markdown` the reference,
and the committed docs/COMPONENTS.md is exactly that output (so it never goes stale)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.manifest import builtin, manifest
from daemon.reference import render_markdown
from daemon.registry import REGISTRY

COMPONENTS_MD = Path(__file__).resolve().parents[2] / "docs" / "COMPONENTS.md"
REGENERATE = ".venv/bin/ingestd stages --markdown --builtin > docs/COMPONENTS.md"


def test_the_committed_reference_is_the_current_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stages", "--markdown", "--builtin"]) == 0
    generated = capsys.readouterr().out
    committed = COMPONENTS_MD.read_text(encoding="utf-8") if COMPONENTS_MD.exists() else ""
    assert committed == generated, f"docs/COMPONENTS.md is stale; regenerate it: {REGENERATE}"


def test_every_builtin_component_is_documented_with_its_whole_docstring_and_keys() -> None:
    entries = builtin(manifest())
    text = render_markdown(entries)
    for entry in REGISTRY:
        if entry.cls.__module__.split(".")[0] != "daemon":
            continue
        assert f"### {entry.kind}: `{entry.name}`" in text
        doc = inspect.cleandoc(entry.cls.__doc__ or "")
        assert doc in text, entry.name
        for key in entry.cls.Config.__dataclass_fields__:
            assert f"| `{key}` |" in text, (entry.name, key)
    for key in ("retry.attempts", "breaker.failure_threshold", "spool_dir", "write_timeout_s"):
        assert f"| `{key}` |" in text  # the keys every sink has, flattened as TOML writes them
    assert "| `format` | `'auto'\\|'csv'\\|'jsonl'` |" in text  # a `|` cannot end a cell
    assert not [e for e in entries if e["module"].startswith("tests.")]


def test_the_text_manifest_prints_the_whole_docstring(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stages"]) == 0
    out = capsys.readouterr().out
    # the first paragraph on the component's line, whole (normalize's wraps in the source)
    assert (
        "stage normalize: Adds `normalized` = (v - min) / (max - min) over the sensor's last"
        " `window` values (0.0 when max == min), rounded to 6 decimal places.\n    window: int"
        in out
    )
    # the keys, then the rest of the docstring, indented
    at = out.index("stage features: Per-sensor tumbling-window features")
    block = out[at : out.index("\n\nstage ", at)]
    assert block.index("    max_pending: int") < block.index(
        "\n\n    Each record: mean, std, min, max, slope, p95, dominant_hz, anomaly_score"
    )
    # a one-paragraph docstring keeps the form the README shows
    assert (
        "stage threshold_filter: Keeps readings with min <= value <= max; the rest are dropped"
        " and counted `filtered`.\n    min: float required" in out
    )
