"""Directories the daemon must write in are refused at load when they never could be."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.config import ConfigError, parse_config
from daemon.config.paths import unusable_dir


def test_a_missing_directory_is_fine_it_is_created(tmp_path: Path) -> None:
    assert unusable_dir(str(tmp_path / "not" / "yet")) is None


@pytest.mark.parametrize("where", ["/proc/ingestd", "/sys/spool", "/dev/shm-not"])
def test_a_virtual_file_system_is_refused(where: str) -> None:
    assert "virtual" in (unusable_dir(where) or "")


def test_a_file_on_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    assert "not a directory" in (unusable_dir(str(tmp_path / "afile")) or "")
    assert "under" in (unusable_dir(str(tmp_path / "afile" / "spool")) or "")


def test_validate_names_the_spool_dir_and_the_state_dir(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    text = f"""
[daemon]
state_dir = "/proc/state"
[[sources]]
type = "simulated"
[[sinks]]
type = "jsonl"
path = "{tmp_path}/out.jsonl"
spool_dir = "{tmp_path}/afile"
"""
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    assert sorted(i.path for i in err.value.issues) == ["daemon.state_dir", "sinks[0].spool_dir"]
