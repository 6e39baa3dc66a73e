"""`ingestd test`: the shipped test files pass, a wrong expectation fails with a readable diff,
a malformed file exits 78 naming the key; the stages really run (state, batching, kinds)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon.batch import Batch
from daemon.cli import main
from daemon.components import Stage
from daemon.testing.run import run_case
from daemon.testing.spec import load_tests

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = sorted((ROOT / "config" / "examples" / "tests").glob("*.toml"))
ALERTS = ROOT / "config" / "examples" / "alerts.toml"
DEFAULT = ROOT / "daemon" / "default.toml"


@dataclass(frozen=True)
class StuckConfig:
    pass


class Stuck(Stage[StuckConfig], name="test_stuck_stage"):
    """Never yields: waits forever for its first batch to be 'processed'."""

    async def process(self, batches: AsyncIterator[Batch]) -> AsyncIterator[Batch]:
        await asyncio.Event().wait()
        yield await anext(batches)


class Exploding(Stage[StuckConfig], name="test_exploding_stage"):
    """Raises on its first batch."""

    async def process(self, batches: AsyncIterator[Batch]) -> AsyncIterator[Batch]:
        async for _ in batches:
            raise ValueError("boom")
        yield Batch.of_sensor("never", [], [], [])


def write(tmp_path: Path, text: str, name: str = "t.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_shipped_test_files_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert {p.name for p in SHIPPED} >= {"default-chain.toml", "alerts.toml", "file-replay.toml"}
    assert main(["test", *map(str, SHIPPED)]) == 0
    out = capsys.readouterr().out
    total = sum(len(load_tests(p)) for p in SHIPPED)
    assert total >= 10
    assert out.rstrip().endswith(f"{total} passed, 0 failed")
    assert "FAIL" not in out


def test_a_wrong_expectation_fails_with_a_diff_of_the_fields_that_differ(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        f"""
config = "{ALERTS}"
[[tests]]
name = "fires after 3 s (wrong: the config holds 5 s)"
at = "sinks[0]"
kinds = ["alert"]
input = [
  {{ sensor_id = "t1", value = 95.0 }}, {{ sensor_id = "t1", value = 95.0 }},
  {{ sensor_id = "t1", value = 95.0 }}, {{ sensor_id = "t1", value = 95.0 }},
  {{ sensor_id = "t1", value = 95.0 }}, {{ sensor_id = "t1", value = 95.0 }},
]
expect = [ {{ state = "firing", ts = 2024-01-01T00:00:03Z }}, {{ state = "resolved" }} ]
counters = {{ alerts = 2 }}

[[tests]]
name = "right"
at = "stages[0]"
input = [ {{ sensor_id = "t1", value = 95.0 }} ]
expect = [ {{ moving_avg = 95.0 }} ]
""",
    )
    assert main(["test", str(path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    at = lines.index("  FAIL  fires after 3 s (wrong: the config holds 5 s)  (sinks[0], 7 records)")
    assert lines[at + 1 : at + 8] == [
        "        expect[0] != records[6] (alert t1 firing):",
        "          - ts = 2024-01-01T00:00:03Z",
        '          + ts = "2024-01-01T00:00:05.000000Z"',
        "        expect[1]: no such record",
        '          - {state = "resolved"}',
        "        counters.alerts: expected 2, got 1",
        f"        (stages from {ALERTS}, test tests[0])",
    ]
    assert "  ok    right  (stages[0], 1 record)" in lines
    assert lines[-1] == "1 passed, 1 failed"


def test_one_missing_record_is_one_problem_not_a_shifted_tail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        f"""
config = "{DEFAULT}"
[[tests]]
name = "expects seq 2, which the filter drops"
at = "stages[0]"
input = [
  {{ sensor_id = "t1", value = 20.0 }}, {{ sensor_id = "t1", value = 5.0 }},
  {{ sensor_id = "t1", value = 30.0 }}, {{ sensor_id = "t1", value = 40.0 }},
]
expect = [ {{ seq = 1 }}, {{ seq = 2, value = 5.0 }}, {{ seq = 3 }}, {{ seq = 4, value = 41.0 }} ]
""",
    )
    assert main(["test", str(path)]) == 1
    out = capsys.readouterr().out
    assert "expect[1]: no such record\n          - {seq = 2, value = 5.0}" in out
    assert "expect[3] != records[2] (reading t1 seq 4):" in out
    assert "- value = 41.0\n          + value = 40.0" in out
    assert "expect[2]" not in out  # seq 3 matched despite the missing record before it


def test_complete_absent_and_the_log_of_a_failing_test(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        """
[[tests]]
name = "an alert on moving_avg without a moving_average stage"
stages = [ { type = "threshold_alert", on = "moving_avg", above = 1.0 } ]
input = [ { sensor_id = "t1", value = 95.0 }, { sensor_id = "t1", value = 96.0 } ]
expect = [ { seq = 1 } ]
absent = [ { seq = 2, absent = ["moving_avg"] } ]
""",
    )
    assert main(["test", str(path)]) == 1
    out = capsys.readouterr().out
    assert "records[1]: not expected (the test is complete)" in out
    assert 'records[1] should be absent (absent[0] {seq = 2, absent = ["moving_avg"]}):' in out
    assert "logged warning: alert_input_missing" in out  # why nothing fired, from the stage


def test_malformed_files_exit_78_naming_every_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        f"""
config = "{ALERTS}"
colour = "red"
[[tests]]
name = "bad keys"
batch_size = 0
input = [ {{ sensor_id = "t1", value = "hot" }}, {{ value = 1.0 }} ]
expect = [ {{ moving_avg = {{ approx = "x" }} }}, {{}} ]
[[tests]]
name = "bad inline stage"
stages = [ {{ type = "moving_average", window = 0 }}, {{ type = "nope" }} ]
input = [ {{ sensor_id = "t1", value = 1.0 }} ]
[[tests]]
name = "no such config"
config = "missing.toml"
input = [ {{ sensor_id = "t1", value = 1.0 }} ]
[[tests]]
name = "no such point"
at = "stages[7]"
input = [ {{ sensor_id = "t1", value = 1.0 }} ]
[[tests]]
name = "a point inline stages do not have"
stages = [ {{ type = "moving_average" }} ]
at = "sinks[0]"
counters = {{ writen = 1 }}
input = [ {{ sensor_id = "t1", value = 1.0 }} ]
""",
    )
    assert main(["test", str(path)]) == 78
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing ran
    assert captured.err.splitlines() == [
        f"ingestd: invalid test file {path}:",
        "  colour: unknown key (known: config, tests)",
        "  tests[0].batch_size: must be >= 1, got 0",
        "  tests[0].input[0].value: must be a number, got str 'hot'",
        "  tests[0].input[1].sensor_id: is required",
        "  tests[0].expect[0].moving_avg.approx: must be a finite number, got str 'x'",
        "  tests[0].expect[1]: names no field (give fields, or absent = [...])",
        "  tests[1].stages[0].window: must be >= 1, got 0",
        "  tests[1].stages[1].type: unknown stage type 'nope' (known: "
        + ", ".join(sorted(n for n in _stage_names()))
        + ")",
        f"  tests[2].config: {tmp_path / 'missing.toml'}: no such file",
        "  tests[3].at: stages[7] does not exist (2 stages to test)",
        "  tests[4].counters: unknown counter 'writen' (known: filtered, rejected, features,"
        " alerts)",
    ]


def _stage_names() -> list[str]:
    from daemon.registry import REGISTRY  # noqa: PLC0415 - what the error lists, as it is now

    return REGISTRY.names("stage")


def test_a_point_the_pipeline_lacks_is_a_config_error(tmp_path: Path) -> None:
    from daemon.config import ConfigError  # noqa: PLC0415

    path = write(
        tmp_path,
        """
[[tests]]
name = "inline stages have no sinks"
stages = [ { type = "moving_average" } ]
at = "sinks[0]"
input = [ { sensor_id = "t1", value = 1.0 } ]
""",
    )
    with pytest.raises(ConfigError) as err:
        load_tests(path)
    assert [str(i) for i in err.value.issues] == [
        "tests[0].at: sinks[0] does not exist (no sinks to test)"
    ]


async def test_state_carries_across_inputs_and_batching_does_not_change_the_records(
    tmp_path: Path,
) -> None:
    inputs = ", ".join(
        f'{{ sensor_id = "s{i % 3}", value = {10.0 + (i * 7) % 50} }}' for i in range(40)
    )
    records = []
    for size in (1, 7, 40):
        path = write(
            tmp_path,
            f"""
config = "{DEFAULT}"
[[tests]]
name = "batch_size {size}"
at = "stages[2]"
batch_size = {size}
input = [ {inputs} ]
expect = []
complete = false
""",
            name=f"b{size}.toml",
        )
        (case,) = load_tests(path)
        outcome = await run_case(case)
        assert outcome.error is None
        records.append(sorted(outcome.records, key=lambda r: (r["sensor_id"], r["seq"])))
    assert records[0] == records[1] == records[2]
    s0 = [r for r in records[0] if r["sensor_id"] == "s0"]
    values = [r["value"] for r in s0]
    assert [r["moving_avg"] for r in s0] == [
        pytest.approx(sum(values[max(0, i - 9) : i + 1]) / len(values[max(0, i - 9) : i + 1]))
        for i in range(len(values))
    ]  # the window of 10 of each sensor, carried from batch to batch


async def test_at_a_sink_the_records_are_what_its_kinds_take(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        f"""
[[sources]]
type = "simulated"
[[stages]]
type = "threshold_alert"
above = 90.0
[[sinks]]
type = "blackhole"
spool_dir = "{tmp_path}/spool-0"
[[sinks]]
type = "blackhole"
kinds = ["alert"]
spool_dir = "{tmp_path}/spool-1"
""",
        name="two-sinks.toml",
    )
    seen = {}
    for at in ("sinks", "sinks[0]", "sinks[1]"):
        path = write(
            tmp_path,
            f"""
config = "{config.name}"
[[tests]]
name = "{at}"
at = "{at}"
input = [ {{ sensor_id = "t1", value = 50.0 }}, {{ sensor_id = "t1", value = 95.0 }} ]
expect = []
complete = false
""",
        )
        (case,) = load_tests(path)
        outcome = await run_case(case)
        seen[at] = [r["kind"] for r in outcome.records]
    assert seen["sinks"] == seen["sinks[0]"] == ["reading", "reading", "alert"]
    assert seen["sinks[1]"] == ["alert"]


async def test_a_stuck_stage_times_out_and_a_raising_one_is_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[tests]]
name = "stuck"
stages = [ { type = "test_stuck_stage" } ]
timeout_s = "200ms"
input = [ { sensor_id = "t1", value = 1.0 } ]
[[tests]]
name = "exploding"
stages = [ { type = "test_exploding_stage" } ]
input = [ { sensor_id = "t1", value = 1.0 } ]
""",
    )
    stuck, exploding = load_tests(path)
    outcome = await run_case(stuck)
    assert outcome.error == "the stages did not finish within timeout_s = 0.2"
    outcome = await run_case(exploding)
    assert outcome.error == "the run raised ValueError('boom')"


def test_times_compare_as_instants_and_approx_has_a_tolerance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        """
[[tests]]
name = "every spelling of one instant"
stages = [ { type = "moving_average", window = 2 } ]
input = [
  { sensor_id = "t1", ts = 1709971200.5, value = 1.0 },
  { sensor_id = "t1", ts = "2024-03-09T08:00:01.5+00:00", value = 2.0 },
]
expect = [
  { ts = 2024-03-09T08:00:00.5Z, moving_avg = { approx = 1.0, tol = 0 } },
  { ts = 1709971201.5, moving_avg = { approx = 1.4, tol = 0.11 } },
]
[[tests]]
name = "a tolerance too tight fails; true is not 1"
stages = [ { type = "moving_average", window = 2 } ]
input = [ { sensor_id = "t1", value = 1.0 }, { sensor_id = "t1", value = 2.0 } ]
expect = [ { seq = 1 }, { seq = 2, moving_avg = { approx = 1.4, tol = 0.09 }, value = true } ]
""",
    )
    assert main(["test", str(path)]) == 1
    out = capsys.readouterr().out
    assert "  ok    every spelling of one instant" in out
    assert "- moving_avg = 1.4 +- 0.09\n          + moving_avg = 1.5" in out
    assert "- value = true\n          + value = 2.0" in out
