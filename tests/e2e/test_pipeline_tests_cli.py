"""`ingestd test` as a user runs it: a process on the shipped test files (exit 0), on a wrong
expectation (exit 1, the diff on stdout) and on a malformed file (exit 78, the key on stderr)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "config" / "examples" / "tests"


def ingestd_test(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon", "test", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


def test_the_shipped_files_pass_from_the_repository_root() -> None:
    files = [str(p.relative_to(ROOT)) for p in sorted(TESTS.glob("*.toml"))]
    done = ingestd_test(*files, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert [ln for ln in lines if ln.startswith("config/")] == files  # one header per file
    results = [ln for ln in lines if ln.startswith("  ")]
    assert results and all(ln.startswith("  ok    ") for ln in results)
    assert lines[-1] == f"{len(results)} passed, 0 failed"


def test_a_failing_test_prints_its_diff_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text(
        f"""
config = "{ROOT / "config" / "examples" / "file-replay.toml"}"
[[tests]]
name = "151 passes (it does not: max is 150)"
input = [ {{ sensor_id = "b1", value = 151.0 }}, {{ sensor_id = "b1", value = 20.0 }} ]
expect = [ {{ value = 151.0 }}, {{ value = 20.0 }} ]
"""
    )
    done = ingestd_test("mine.toml", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines()[:4] == [
        "mine.toml",
        "  FAIL  151 passes (it does not: max is 150)  (sinks, 1 record)",
        "        expect[0]: no such record",
        "          - {value = 151.0}",
    ]
    assert done.stdout.splitlines()[-1] == "0 passed, 1 failed"


def test_a_malformed_file_exits_78_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text(
        f"""
config = "{ROOT / "config" / "examples" / "alerts.toml"}"
[[tests]]
name = "a typo"
at = "stage[1]"
input = [ {{ sensor_id = "b1", value = 1.0 }} ]
"""
    )
    done = ingestd_test("bad.toml", cwd=tmp_path)
    assert done.returncode == 78
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "ingestd: invalid test file bad.toml:",
        "  tests[0].at: must be stages[N], sinks or sinks[N], got 'stage[1]'",
    ]
