"""threshold_alert: firing/resolved records with hysteresis and a hold time, per sensor, carried
across a reload; readings pass through untouched."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from daemon.batch import Batch
from daemon.cli import EX_CONFIG, main
from daemon.observability import events
from daemon.sinks.jsonl.sink import JsonlSink
from daemon.stages.threshold_alert import ThresholdAlert, ThresholdAlertConfig, iso_utc
from daemon.wire.encode import encode_batch, encode_derived
from tests.support import TestContext, levers

T0 = 1_700_000_000.0


async def feed(batches: list[Batch]) -> AsyncIterator[Batch]:
    for batch in batches:
        yield batch


async def run(stage: ThresholdAlert, batches: list[Batch]) -> list[Batch]:
    return [b async for b in stage.process(feed(batches))]


def alerts(batches: list[Batch]) -> list[dict[str, Any]]:
    return [d for b in batches for d in b.derived if d.get("kind") == "alert"]


def make(ctx: TestContext | None = None, **keys: Any) -> ThresholdAlert:
    config = ThresholdAlertConfig(**keys)
    assert config.check() == []
    return ThresholdAlert(config, ctx or TestContext("stages[0]"))


def series(sensor: str, values: list[float], start: int = 0, step_s: float = 1.0) -> Batch:
    seq = list(range(start, start + len(values)))
    return Batch.of_sensor(sensor, seq=seq, ts=[T0 + i * step_s for i in seq], value=values)


async def test_crossing_fires_once_and_resolves_once_with_hysteresis() -> None:
    stage = make(above=80.0, clear_at=70.0)
    # up through 80, oscillating between 70 and 80 (no resolve, no refire), then down to 70
    values = [50.0, 79.0, 85.0, 90.0, 75.0, 81.0, 72.0, 88.0, 70.5, 70.0, 60.0, 71.0]
    batch = series("TA1", values)
    before = batch.value.copy()
    (out,) = await run(stage, [batch])
    assert out is batch
    assert np.array_equal(out.value, before) and len(out) == len(values)
    fired, resolved = alerts([out])
    assert fired == {
        "kind": "alert",
        "sensor_id": "TA1",
        "state": "firing",
        "since": iso_utc(T0 + 2),
        "value": 85.0,
        "rule": "value > 80.0",
        "ts": iso_utc(T0 + 2),
    }
    assert resolved["state"] == "resolved"
    assert resolved["since"] == iso_utc(T0 + 2)  # when the condition began
    assert (resolved["value"], resolved["ts"]) == (70.0, iso_utc(T0 + 9))
    assert levers(stage).counters.alerts == 2
    assert levers(stage).counters.filtered == 0
    assert iso_utc(T0 + 2) == "2023-11-14T22:13:22.000000Z"


async def test_below_mirrors_above_and_clear_at_defaults_to_the_threshold() -> None:
    stage = make(below=10.0, rule="too cold")
    out = await run(stage, [series("TA2", [12.0, 9.0, 8.0, 10.0, 9.5, 11.0])])
    got = [(a["state"], a["value"], a["rule"]) for a in alerts(out)]
    assert got == [
        ("firing", 9.0, "too cold"),
        ("resolved", 10.0, "too cold"),
        ("firing", 9.5, "too cold"),
        ("resolved", 11.0, "too cold"),
    ]


async def test_a_spike_shorter_than_for_s_never_fires() -> None:
    stage = make(above=80.0, for_s=5.0)
    spike = [50.0, 90.0, 95.0, 99.0, 90.0, 91.0, 50.0, 90.0, 50.0]  # above for 4 s at most
    out = await run(stage, [series("TA3", spike)])
    assert alerts(out) == []
    held = await run(stage, [series("TA3", [90.0] * 7, start=9)])
    (fired,) = alerts(held)
    assert fired["since"] == iso_utc(T0 + 9)  # the hold began at the first reading above
    assert fired["ts"] == iso_utc(T0 + 14)  # and fired once it had held 5 s
    assert stage.config.rule_name == "value > 80.0 for 5.0s"


async def test_interleaved_sensors_are_independent() -> None:
    stage = make(above=50.0)
    a = [10.0, 60.0, 60.0, 10.0, 10.0, 10.0]
    b = [60.0, 60.0, 10.0, 10.0, 60.0, 10.0]
    sensors = ["TA4a", "TA4b"] * len(a)
    ids = [Batch.of_sensor(s, [0], [0], [0]).sensor[0] for s in ("TA4a", "TA4b")]
    values = [v for pair in zip(a, b, strict=True) for v in pair]
    seq = [i // 2 for i in range(len(values))]
    batch = Batch.from_columns(
        [ids[0] if s == "TA4a" else ids[1] for s in sensors],
        seq,
        [T0 + s for s in seq],
        values,
    )
    out = await run(stage, [batch])
    got = [(x["sensor_id"], x["state"], x["ts"]) for x in alerts(out)]
    assert got == [
        ("TA4b", "firing", iso_utc(T0)),
        ("TA4a", "firing", iso_utc(T0 + 1)),
        ("TA4b", "resolved", iso_utc(T0 + 2)),
        ("TA4a", "resolved", iso_utc(T0 + 3)),
        ("TA4b", "firing", iso_utc(T0 + 4)),
        ("TA4b", "resolved", iso_utc(T0 + 5)),
    ]


async def test_state_survives_a_reload() -> None:
    ctx = TestContext("stages[1]")
    first = make(ctx, above=80.0, clear_at=60.0, for_s=2.0)
    out = await run(first, [series("TA5", [90.0, 91.0, 92.0, 70.0])])
    assert [a["state"] for a in alerts(out)] == ["firing"]
    ctx.new_generation()
    second = make(ctx, above=80.0, clear_at=60.0, for_s=2.0)
    out = await run(second, [series("TA5", [95.0, 65.0, 55.0], start=4)])
    (resolved,) = alerts(out)  # still firing after the reload: no second `firing`
    assert resolved["state"] == "resolved"
    assert resolved["since"] == iso_utc(T0)
    # a pending hold survives too
    third = make(ctx, above=80.0, clear_at=60.0, for_s=2.0)
    await run(third, [series("TA5", [90.0], start=7)])
    fourth = make(ctx, above=80.0, clear_at=60.0, for_s=2.0)
    (fired,) = alerts(await run(fourth, [series("TA5", [90.0, 90.0], start=8)]))
    assert (fired["since"], fired["ts"]) == (iso_utc(T0 + 7), iso_utc(T0 + 9))
    assert ctx.counters.alerts == 3


async def test_moving_avg_column_and_a_missing_one() -> None:
    stage = make(on="moving_avg", above=5.0)
    with capture_logs() as logs:
        plain = [series("TA6", [9.0, 9.0]), series("TA6", [9.0], start=2)]
        out = await run(stage, plain)
    assert [b is p for b, p in zip(out, plain, strict=True)] == [True, True]
    assert alerts(out) == []
    assert [e["event"] for e in logs].count(events.ALERT_INPUT_MISSING) == 1
    batch = series("TA6", [9.0, 9.0, 9.0], start=3)
    batch.columns["moving_avg"] = np.array([4.0, 6.0, 4.0])
    got = [(a["state"], a["value"]) for a in alerts(await run(stage, [batch]))]
    assert got == [("firing", 6.0), ("resolved", 4.0)]


async def test_anomaly_score_comes_from_features_records() -> None:
    stage = make(on="anomaly_score", above=3.0)
    batch = series("TA7", [1.0] * 8)
    batch.derived = [
        {"kind": "features", "sensor_id": "TA7", "window_end_seq": 3, "anomaly_score": 4.5},
        {"kind": "alert", "sensor_id": "TA7"},  # not an input
        {"kind": "features", "sensor_id": "TA7", "window_end_seq": 7, "anomaly_score": 0.5},
        {"kind": "features", "sensor_id": "gone", "window_end_seq": 7, "anomaly_score": 9.0},
    ]
    (out,) = await run(stage, [batch])
    got = [(a["state"], a["value"], a["ts"]) for a in alerts([out])[1:]]
    assert got == [("firing", 4.5, iso_utc(T0 + 3)), ("resolved", 0.5, iso_utc(T0 + 7))]
    assert len(out.derived) == 6


async def test_nan_inputs_neither_hold_nor_break_the_condition() -> None:
    stage = make(above=1.0, for_s=2.0)
    nan = float("nan")
    got = alerts(await run(stage, [series("TA8", [2.0, nan, 2.0, nan, 0.0])]))
    assert [(a["state"], a["ts"]) for a in got] == [
        ("firing", iso_utc(T0 + 2)),
        ("resolved", iso_utc(T0 + 4)),
    ]


def reference(values: list[float], above: float, clear_at: float) -> list[tuple[str, int]]:
    """The state machine, one reading at a time (for_s = 0)."""
    out, firing = [], False
    for i, v in enumerate(values):
        if not firing and v > above:
            firing = True
            out.append(("firing", i))
        elif firing and v <= clear_at:
            firing = False
            out.append(("resolved", i))
    return out


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.sampled_from([0.0, 4.0, 5.0, 6.0, 9.0, 10.0, 11.0]), max_size=40),
    other=st.lists(st.sampled_from([0.0, 20.0]), max_size=40),
    cuts=st.lists(st.integers(0, 80), max_size=5),
)
def test_batching_and_interleaving_do_not_change_the_alerts(
    values: list[float], other: list[float], cuts: list[int]
) -> None:
    ids = [int(Batch.of_sensor(s, [0], [0], [0]).sensor[0]) for s in ("TAh", "TAo")]
    rows = [(ids[0], i, v) for i, v in enumerate(values)]
    rows += [(ids[1], i, v) for i, v in enumerate(other)]
    rows.sort(key=lambda r: (r[1], r[0]))  # interleaved, each sensor in seq order
    bounds = sorted({0, len(rows), *(c for c in cuts if c <= len(rows))})
    batches = [
        Batch.from_columns(
            [r[0] for r in part],
            [r[1] for r in part],
            [T0 + r[1] for r in part],
            [r[2] for r in part],
        )
        for part in (rows[a:b] for a, b in itertools.pairwise(bounds))
    ]
    stage = make(above=9.0, clear_at=5.0)
    out = asyncio.run(run(stage, batches))
    got = [
        (a["state"], round(dt.datetime.fromisoformat(a["ts"]).timestamp() - T0))
        for a in alerts(out)
        if a["sensor_id"] == "TAh"
    ]
    assert got == reference(values, 9.0, 5.0)
    assert sum(len(b) for b in out) == len(rows)


async def test_alert_records_are_json_lines_in_the_jsonl_sink(tmp_path: Path) -> None:
    stage = make(above=1.0)
    (batch,) = await run(stage, [series("TA9", [0.0, 2.0])])
    (record,) = alerts([batch])
    assert orjson.loads(encode_derived([record])) == record
    path = tmp_path / "out.jsonl"
    sink = JsonlSink(
        JsonlSink.Config(path=str(path)), TestContext("sinks[0]", str(tmp_path / "dl.jsonl"))
    )
    await sink.open()
    await sink.write(batch)
    await sink.flush()
    await sink.close()
    assert path.read_bytes() == encode_batch(batch)
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [line.get("kind") for line in lines] == ["reading", "reading", "alert"]
    assert lines[-1]["state"] == "firing" and lines[-1]["since"].endswith("Z")


BASE = """
[[sources]]
type = "simulated"
sensors = 1
rate_hz = 1
[[stages]]
type = "threshold_alert"
{keys}
[[sinks]]
type = "console"
"""


@pytest.mark.parametrize(
    ("keys", "key", "fragment"),
    [
        ("above = 5.0\nbelow = 1.0", "above", "not both"),
        ('on = "value"', "above", "one of above or below"),
        ("above = 5.0\nclear_at = 6.0", "clear_at", "must be <= above"),
        ("below = 5.0\nclear_at = 4.0", "clear_at", "must be >= below"),
        ('above = 5.0\non = "median"', "on", ""),
        ("above = 5.0\nfor_s = -1", "for_s", ""),
    ],
)
def test_config_errors_exit_78_naming_the_key(
    tmp_path: Path, keys: str, key: str, fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ingestd.toml"
    path.write_text(BASE.format(keys=keys))
    assert main(["validate", "-c", str(path)]) == EX_CONFIG
    err = capsys.readouterr().err
    assert any(f"stages[0].{key}: " in line and fragment in line for line in err.splitlines()), err


def test_a_good_config_validates(tmp_path: Path) -> None:
    path = tmp_path / "ingestd.toml"
    path.write_text(BASE.format(keys='on = "moving_avg"\nabove = 5.0\nclear_at = 4\nfor_s = "2s"'))
    assert main(["validate", "-c", str(path)]) == 0


def test_ingestd_stages_lists_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stages"]) == 0
    text = capsys.readouterr().out
    assert "stage threshold_alert:" in text
    assert "clear_at: float | None = None" in text
