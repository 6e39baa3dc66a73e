"""The example plugin (examples/plugin) as a user installs it: its own package beside ingestd in a
venv, found through its `ingestd.plugins` entry point, documented by `ingestd stages`, checked
by `ingestd validate` and run by `ingestd run`.

How it stays fast (~7 s; ~13 s with pip's build isolation and a plain resolve) without hiding
anything: the venv is made without pip (the running pip drives it through `pip --python`);
ingestd and the plugin are built from copies of their sources with only their declared build
requirements on the path (installed once into pytest's cache, `build_tools`) and installed
`--no-deps`; at run time their declared runtime dependencies come from the environment running
the tests, through a directory of symlinks to exactly those distributions (`dependency_view`).
So the installed ingestd is imported, never the checkout; an import neither package declares
fails; and `pip check` compares the declared versions with what is there. A full
resolve-and-install from the index is test_install_venv.py's job, as the service install is.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import configs
from tests.e2e.daemonproc import read_rows, readings, reconciles
from tests.e2e.installs import (
    build_tools,
    clean_env,
    copy_checkout,
    dependency_view,
    requirements,
    run,
    unavailable,
)

pytestmark = pytest.mark.e2e

PACKAGES = {"ingestd", "ingestd-plugin-example"}
LAB, RIG = 4, 2  # sensors kept (`lab-*`) and sensors dropped by prefix (`rig-*`)
PER_SENSOR = 100
CAP = 60.0  # max_value; the simulated values are 20..80 plus spikes, so it drops some


def stage(**keys: Any) -> configs.Table:
    return {"type": "drop_sensors", **keys}


def config(tmp: Path, stages: list[configs.Table]) -> Path:
    def sensors(prefix: str, count: int) -> configs.Table:
        return {
            "type": "simulated",
            "sensors": count,
            "rate_hz": 5000.0,
            "max_readings": PER_SENSOR,
            "fault_rate": 0.0,
            "seed": 7,
            "id_prefix": prefix,
        }

    doc = {
        "daemon": {
            "health_interval_s": 1.0,
            "dead_letter": str(tmp / "dead-letter.jsonl"),
            "state_dir": str(tmp / "state"),
        },
        "sources": [sensors("lab-", LAB), sensors("rig-", RIG)],
        "stages": stages,
        "sinks": [{"type": "jsonl", "path": str(tmp / "out.jsonl"), "spool_dir": str(tmp / "sp")}],
    }
    return configs.write(tmp / f"cfg-{len(list(tmp.glob('cfg-*')))}.toml", doc)


@pytest.fixture
def venv(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """A venv holding an installed ingestd and the example plugin, and their dependencies."""
    checkout = copy_checkout(tmp_path / "src")
    plugin = checkout / "examples" / "plugin"
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    tools = build_tools(
        [checkout, plugin], cache.mkdir("ingestd-installs") if cache else tmp_path / "cache"
    )
    venv = tmp_path / "venv"
    made = run([sys.executable, "-m", "venv", "--without-pip", str(venv)], timeout=60)
    assert made.returncode == 0, made.stderr
    site = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")]

    # the build sees the build requirements and nothing else, as in an isolated build
    (site / "ingestd_build_tools.pth").write_text(f"{tools}\n")
    installed = run(
        [*pip, "install", "--no-deps", "--no-build-isolation", str(checkout), str(plugin)],
        timeout=600,
        env=clean_env(),
    )
    if "no such option: --python" in installed.stderr:
        unavailable("the running pip is older than 22.3 (no --python)")
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-2000:]
    (site / "ingestd_build_tools.pth").unlink()

    # at run time: the declared dependencies and nothing else
    wanted = requirements(checkout) + requirements(plugin)
    linked = dependency_view(wanted, tmp_path / "deps", skip=PACKAGES)
    assert "numpy" in linked
    (site / "ingestd_test_deps.pth").write_text(f"{tmp_path / 'deps'}\n")
    checked = run([*pip, "check"], timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return venv


def test_the_example_plugin_installs_documents_validates_and_runs(
    tmp_path: Path, venv: Path
) -> None:
    env, python, ingestd = clean_env(), str(venv / "bin" / "python"), str(venv / "bin" / "ingestd")
    where = run(
        [python, "-c", "import daemon, ingestd_example as p; print(daemon.__file__, p.__file__)"],
        timeout=60,
        cwd=tmp_path,
        env=env,
    )
    assert where.returncode == 0, where.stderr
    assert all(Path(f).is_relative_to(venv) for f in where.stdout.split()), where.stdout

    # `ingestd stages` finds the stage through the entry point and documents its fields
    listed = run([ingestd, "stages", "--json"], timeout=60, cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    [entry] = [e for e in json.loads(listed.stdout) if e["name"] == "drop_sensors"]
    assert entry["kind"] == "stage"
    assert entry["doc"].startswith("Drops sensors by id prefix")
    fields = {p["name"]: (p["type"], p["required"], p["default"]) for p in entry["params"]}
    assert fields == {
        "prefixes": ("list[str]", True, None),
        "max_value": ("float | None", False, None),
    }

    # `ingestd validate`: a string for the list, an int in it, a misspelt key; every one named
    bad = config(
        tmp_path,
        [stage(prefixes="rig-"), stage(prefixes=[1]), stage(prefix=["rig-"])],
    )
    refused = run([ingestd, "validate", "-c", str(bad)], timeout=60, cwd=tmp_path, env=env)
    assert refused.returncode == 78, refused.stdout + refused.stderr
    assert "stages[0].prefixes: must be a list, got str 'rig-'" in refused.stderr
    assert "stages[1].prefixes[0]: must be a string, got int 1" in refused.stderr
    assert "stages[2].prefix: unknown key" in refused.stderr
    assert "stages[2].prefixes: is required" in refused.stderr

    # a bounded run through the stage: the rig sensors and the readings above the cap are
    # dropped, counted `filtered`, and the counters reconcile
    good = config(tmp_path, [stage(prefixes=["rig-"], max_value=CAP)])
    ran = run([ingestd, "run", "-c", str(good)], timeout=120, cwd=tmp_path, env=env)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    events = [json.loads(line) for line in ran.stdout.splitlines() if line.strip()]
    [done] = [e for e in events if e["event"] == "shutdown_complete"]
    c = done["counters"]
    rows = readings(read_rows(tmp_path / "out.jsonl"))
    assert c["read"] == (LAB + RIG) * PER_SENSOR
    assert c["rejected"] == c["spooled"] == c["in_flight"] == 0
    assert c["written"] == len(rows)
    assert {r["sensor_id"] for r in rows} == {f"lab-{i:04d}" for i in range(LAB)}
    assert all(r["value"] <= CAP for r in rows)
    capped = LAB * PER_SENSOR - len(rows)  # lab readings missing from the output
    assert 0 < capped < LAB * PER_SENSOR, "the cap should drop some lab readings, not all"
    assert c["filtered"] == RIG * PER_SENSOR + capped
    assert done["reconciled"] is True and reconciles(c)
