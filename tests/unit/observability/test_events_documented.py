"""Every event name is documented in the README's "Events" table (and nothing else is): a new
event cannot ship unexplained, a removed one cannot linger in the docs."""

from __future__ import annotations

import re
from pathlib import Path

from daemon.observability import events

README = Path(__file__).resolve().parents[3] / "README.md"
_LEVELS = {"debug", "info", "warning", "error", "critical"}


def events_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Events\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def table_rows() -> dict[str, list[str]]:
    """The table's event rows: name -> the other cells."""
    rows = {}
    for line in events_section().splitlines():
        match = re.fullmatch(r"\| `([a-z_]+)` \|(.*)\|", line)
        if match:
            rows[match.group(1)] = [cell.strip() for cell in match.group(2).split(" | ")]
    return rows


def test_every_event_name_is_in_the_events_table_and_only_those() -> None:
    documented = set(table_rows())
    assert events.ALL - documented == set(), "document these in README.md, section Events"
    assert documented - events.ALL == set(), "no such events (any more): remove them from README"


def test_each_row_has_a_level_a_when_and_fields() -> None:
    for name, (level, when, fields) in table_rows().items():
        assert set(re.findall(r"[a-z]+", level)) & _LEVELS, (name, level)
        assert when and fields, name


def test_the_section_links_the_component_reference() -> None:
    assert "[Component reference](docs/COMPONENTS.md)" in events_section()
    assert (README.parent / "docs" / "COMPONENTS.md").is_file()
