"""`ingestd test FILE...`: load every test file, run each test, print the results.

Every file is loaded (and every config it names validated) before any test runs: a malformed
file is a config error, printed with its key paths and exit 78, as `ingestd validate` does; a
run whose tests ran ends 0 when all passed, else 1. Output, one line per test and a diff under
each failure:

    config/examples/tests/alerts.toml
      ok    the hot sensor fires once its average held above 90 for 5 s  (sinks[0], 3 records)
      FAIL  ...
            expect[1] != records[2] (alert t1 resolved):
              - state = "firing"
              + state = "resolved"
    3 passed, 1 failed
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from daemon.config import ConfigError
from daemon.testing.compare import differences, record_line
from daemon.testing.run import Outcome, run_case
from daemon.testing.spec import PipelineTest, load_tests

EX_OK = 0
EX_FAILED = 1
EX_CONFIG = 78  # as `ingestd validate` exits for a bad config


def add_test_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="TOML test files")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print every test's records at its point (to write the expectations from)",
    )


def run_tests(args: argparse.Namespace) -> int:
    loaded: list[tuple[Path, list[PipelineTest]]] = []
    bad = False
    for path in args.files:
        try:
            loaded.append((path, load_tests(path)))
        except ConfigError as exc:
            bad = True
            print(f"ingestd: invalid test file {path}:", file=sys.stderr)
            for issue in exc.issues:
                print(f"  {issue}", file=sys.stderr)
    if bad:
        return EX_CONFIG
    passed, failed = asyncio.run(_run_all(loaded, verbose=args.verbose))
    print(f"{passed} passed, {failed} failed")
    return EX_OK if failed == 0 else EX_FAILED


async def _run_all(
    loaded: list[tuple[Path, list[PipelineTest]]], *, verbose: bool
) -> tuple[int, int]:
    passed = failed = 0
    for path, cases in loaded:
        print(path)
        for case in cases:
            outcome = await run_case(case)
            problems = _problems(case, outcome)
            count = len(outcome.records)
            where = f"{case.at}, {count} record{'' if count == 1 else 's'}"
            print(f"  {'FAIL' if problems else 'ok  '}  {case.name}  ({where})", flush=True)
            for line in problems:
                print(f"        {line}")
            if verbose:
                for i, record in enumerate(outcome.records):
                    print(f"        records[{i}] = {record_line(record)}")
            if problems:
                failed += 1
            else:
                passed += 1
    return passed, failed


def _problems(case: PipelineTest, outcome: Outcome) -> list[str]:
    if outcome.error is not None:
        lines = [outcome.error]
    else:
        lines = differences(case, outcome.records, outcome.counters)
    if lines:
        lines.append(f"(stages from {case.pipeline.origin}, test {case.path})")
        for entry in outcome.logs:
            fields = ", ".join(
                f"{k}={v!r}" for k, v in entry.items() if k not in ("event", "log_level")
            )
            lines.append(f"logged {entry['log_level']}: {entry['event']} {fields}".rstrip())
    return lines
