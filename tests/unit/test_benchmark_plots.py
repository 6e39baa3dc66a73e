"""The benchmark charts: each renders from a small fixture shaped like the stored results, the
harness draws a run's charts with `--plots`, and without matplotlib both say how to install it
(the plots tool then exits 1; the harness runs on)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("matplotlib", reason="matplotlib is the optional `plots` dependency")

from benchmarks import charts, plots  # after the skip: charts imports matplotlib

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"
MACHINE = {"machine": {"cpu": "test cpu", "cores": 2, "python": "3.11", "loadavg": [0.1]}}


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG), path
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (round(9.0 * charts.DPI), round(4.8 * charts.DPI))
    assert len(data) > 10_000  # drawn, not blank


def results() -> list[dict[str, Any]]:
    """One of everything the charts read, as `python -m benchmarks` and the soak print it."""
    lines: list[dict[str, Any]] = [MACHINE]
    for i, rate in enumerate([2.1e6, 1.8e6, 2.3e6]):
        lines.append({"scenario": "default_chain", "run": i, "rate": rate})
        lines.append({"scenario": "with_features", "run": i, "rate": rate * 0.7})
        lines.append({"scenario": "baseline_json", "run": i, "rate": rate / 45})
    lines.append({"ratio": "default_chain/baseline_json", "value": 45.0, "target": ">= 5"})
    cdf = [[10.0 * 1.09**k, min(1.0, 0.05 * k)] for k in range(21)]
    lines.append({"scenario": "concurrency", "run": 0, "sensors": 10000, "e2e_cdf_ms": cdf})
    series = [
        [2.5 * k, 100_000.0 if k < 4 else 10_000.0, 10_000.0, min(k, 6) * 9000] for k in range(12)
    ]
    lines.append(
        {
            "scenario": "backpressure",
            "run": 0,
            "nominal_per_s": 100_000,
            "sink_max_per_s": 10_000.0,
            "rate_series": series,
            "stop_at_s": 25.0,
            "lost": 0,
        }
    )
    lines += [{"at_s": 5.0 * k, "rss_mb": 200.0 + k % 3} for k in range(40)]
    lines += [{"fault": kind, "at_s": 60.0 * (k + 1)} for k, kind in enumerate(["reload", "stall"])]
    lines.append(
        {"summary": "soak", "first_after_warmup": {"at_s": 60.0}, "growth_pct": {"rss_mb": 1.0}}
    )
    return lines


def test_each_chart_renders_from_its_series(tmp_path: Path) -> None:
    bars = [
        charts.Bar("default_chain", [2e6, 2.2e6], 1e6),
        charts.Bar("baseline_json", [5e4], None, True),
    ]
    made = [
        charts.throughput(bars, tmp_path / "t.png", title="throughput"),
        charts.rss_over_time(
            [(0.0, 10.0), (60.0, 12.0), (120.0, 12.5)], tmp_path / "r.png", title="rss"
        ),
        charts.latency_cdf(
            [charts.Curve("run", [[1.0, 0.5], [3.0, 1.0]], 2.9)],
            tmp_path / "l.png",
            target_p99_ms=250.0,
            title="latency",
        ),
        charts.backpressure(
            [[1.0, 100.0, 10.0, 5.0], [2.0, 10.0, 10.0, 50.0]],
            tmp_path / "b.png",
            nominal_per_s=100.0,
            sink_max_per_s=10.0,
            title="bp",
        ),
    ]
    for path in made:
        assert_png(path)


def test_stored_results_give_every_chart_and_quick_runs_none(tmp_path: Path) -> None:
    stored = tmp_path / "2026-12-04-all.jsonl"
    stored.write_text("\n".join(json.dumps(o) for o in results()) + "\nnot json\n")
    quick = tmp_path / "2026-12-05-quick.jsonl"
    quick.write_text(json.dumps({**MACHINE, "quick": True}) + "\n")
    out = tmp_path / "charts"
    made = plots.render(plots.stored([quick, stored]), out)
    assert set(made) == set(plots.CHARTS)
    for path, source in made.values():
        assert source.endswith("2026-12-04-all.jsonl")  # never the quick run
        assert_png(path)
    assert sorted(p.name for p in out.iterdir()) == [
        "backpressure.png",
        "latency_cdf.png",
        "soak_rss.png",
        "throughput.png",
    ]
    assert plots.main([str(quick), "--out", str(tmp_path / "none")]) == 1  # nothing to draw


def run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


NO_MATPLOTLIB = "import sys; sys.modules['matplotlib'] = None; "


def test_without_matplotlib_the_tool_says_how_to_install_it(tmp_path: Path) -> None:
    proc = run(
        NO_MATPLOTLIB + "from benchmarks.plots import main; sys.exit(main(['--out', sys.argv[1]]))",
        str(tmp_path),
    )
    assert proc.returncode == 1
    assert "pip install -e '.[plots]'" in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.e2e
@pytest.mark.parametrize("matplotlib", [True, False])
def test_the_harness_draws_its_run_with_plots(tmp_path: Path, matplotlib: bool) -> None:
    argv = ["--quick", "--scenario", "default_chain", "--plots", str(tmp_path)]
    code = (
        "" if matplotlib else NO_MATPLOTLIB
    ) + "import sys; from benchmarks.__main__ import main; sys.exit(main(sys.argv[1:]))"
    proc = run(code, *argv)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert any(
        json.loads(line).get("scenario") == "default_chain" for line in proc.stdout.splitlines()
    )
    if matplotlib:
        assert_png(tmp_path / "throughput.png")
        assert f"chart: {tmp_path / 'throughput.png'}" in proc.stderr
    else:
        assert "--plots: matplotlib is not installed" in proc.stderr
        assert list(tmp_path.iterdir()) == []
