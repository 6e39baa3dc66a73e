"""Every shipped example config is one a user can run: `ingestd validate` accepts it."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.cli import main

EXAMPLES = sorted((Path(__file__).parents[3] / "config" / "examples").glob("*.toml"))


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_an_example_validates(
    path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INGESTD_PG_DSN", "postgresql://ingestd@127.0.0.1:5432/test")
    assert main(["validate", "-c", str(path)]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith("ok:")


def test_the_postgres_example_names_its_missing_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("INGESTD_PG_DSN", raising=False)
    path = next(p for p in EXAMPLES if "postgres" in p.name)
    assert main(["validate", "-c", str(path)]) == 78
    assert "sinks[0].dsn" in capsys.readouterr().err
