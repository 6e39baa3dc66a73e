"""The daemon with two sinks of different `kinds`: readings into one file, features into the
other, each reading counted once."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import configs
from tests.e2e.daemonproc import DaemonProcess, read_rows, reconciles, write_config

pytestmark = pytest.mark.e2e


def test_readings_and_features_go_to_their_own_files(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    cfg = write_config(
        tmp_path,
        sensors=5,
        max_readings=400,
        features=configs.features(window=20, workers=0),
        sink={"kinds": ["reading"]},
        more_sinks=[
            {
                "type": "jsonl",
                "path": str(tmp_path / "features.jsonl"),
                "spool_dir": str(tmp_path / "spool-features"),
                "kinds": ["features"],
            }
        ],
    )
    d = DaemonProcess(cfg)
    daemons.append(d)
    assert d.finish(timeout=60) == 0, d.stderr
    c = d.counters()
    readings = read_rows(tmp_path / "out.jsonl")
    features = read_rows(tmp_path / "features.jsonl")
    assert {r["kind"] for r in readings} == {"reading"}
    assert c["read"] == 5 * 400
    assert len(readings) == c["written"] == c["read"] - c["filtered"]  # the default chain
    assert {r["kind"] for r in features} == {"features"}
    assert len(features) == c["features"] > 0
    assert reconciles(c)
