"""The benchmark harness keeps working: `--quick` runs every scenario on a tiny workload.
No timing is asserted here; the numbers live in benchmarks/RESULTS.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_quick_mode_prints_one_json_object_per_run_and_the_ratios() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    objects = [json.loads(line) for line in proc.stdout.splitlines()]
    runs = {o["scenario"]: o for o in objects if "scenario" in o}
    assert set(runs) == {"default_chain", "with_features", "baseline_json", "baseline_orjson"}
    assert runs["default_chain"]["readings"] == 50 * 300
    assert runs["with_features"]["features"] > 0
    assert runs["default_chain"]["peak_rss_mb"] > 0
    ratios = {o["ratio"] for o in objects if "ratio" in o}
    assert ratios == {"default_chain/baseline_json", "default_chain/baseline_orjson"}
