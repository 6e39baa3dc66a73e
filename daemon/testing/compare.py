"""Expected against actual records, as a diff a person can read.

The expectations are matched to the records in order, as many as possible (a longest common
subsequence over "this expectation holds for this record"), so one wrong or missing record
shows as that one problem, not as every record after it shifted by one. What is left between
two matched pairs is paired up again for the diff: an expectation with the record at its place
that comes closest (fewest fields off), showing only the fields that differ:

    expect[2] != records[4] (reading t1 seq 3):
      - moving_avg = 21.0 +- 0.001
      + moving_avg = 20.5

then an expectation with no record at all (`no such record`), and, when the test is
`complete`, a record nobody expected (`not expected`). Records that match an `absent` table and
counters that differ are listed after.
"""

from __future__ import annotations

import itertools
from typing import Any

from daemon.testing.matchers import Expectation, show
from daemon.testing.spec import PipelineTest


def differences(
    case: PipelineTest, records: list[dict[str, Any]], counters: dict[str, int]
) -> list[str]:
    """The diff lines of a failed test; empty when it passed."""
    kinds = case.kinds
    compared = [i for i, r in enumerate(records) if r.get("kind") in kinds]
    chosen = [records[i] for i in compared]
    expect = list(case.expect)
    pairs = _aligned(expect, chosen)
    out: list[str] = []
    used: set[int] = {j for _, j in pairs}
    bounds = [(-1, -1), *pairs, (len(expect), len(chosen))]
    for (i0, j0), (i1, j1) in itertools.pairwise(bounds):
        free = [j for j in range(j0 + 1, j1) if j not in used]
        for i in range(i0 + 1, i1):
            j = _closest(expect[i], chosen, free)
            if j is None:
                out.append(f"expect[{i}]: no such record")
                out.append(f"  - {expect[i].describe()}")
                continue
            free = [k for k in free if k > j]
            used.add(j)
            out.append(f"expect[{i}] != records[{compared[j]}] ({_title(chosen[j])}):")
            for name, want, seen in expect[i].mismatches(chosen[j]):
                out.append(f"  - {name} = {want}")
                out.append(f"  + {name} = {seen}")
    if case.keys.complete:
        for j in sorted(set(range(len(chosen))) - used):
            out.append(f"records[{compared[j]}]: not expected (the test is complete)")
            out.append(f"  + {record_line(chosen[j])}")
    for n, rule in enumerate(case.absent):
        for i, record in enumerate(records):
            if rule.matches(record):
                out.append(f"records[{i}] should be absent (absent[{n}] {rule.describe()}):")
                out.append(f"  + {record_line(record)}")
    for counter, count in case.keys.counters.items():
        if counters.get(counter) != count:
            out.append(f"counters.{counter}: expected {count}, got {counters.get(counter)}")
    return out


def _aligned(expect: list[Expectation], records: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """`(expectation, record)` index pairs: the most expectations that hold, in order."""
    n, m = len(expect), len(records)
    holds = [[e.matches(r) for r in records] for e in expect]
    best = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            best[i][j] = (
                best[i + 1][j + 1] + 1 if holds[i][j] else max(best[i + 1][j], best[i][j + 1])
            )
    pairs: list[tuple[int, int]] = []
    i = j = 0
    while i < n and j < m:
        if holds[i][j] and best[i][j] == best[i + 1][j + 1] + 1:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif best[i + 1][j] >= best[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


def _closest(expect: Expectation, records: list[dict[str, Any]], free: list[int]) -> int | None:
    """The free record that misses the fewest of `expect`'s fields (the first, on a tie)."""
    if not free:
        return None
    return min(free, key=lambda j: (len(expect.mismatches(records[j])), j))


def _title(record: dict[str, Any]) -> str:
    """`reading t1 seq 3`, `alert t1 firing`, `features t1 window_end_seq 256`."""
    kind = record.get("kind", "?")
    words = [str(kind), str(record.get("sensor_id", "?"))]
    if kind == "reading":
        words += ["seq", str(record.get("seq"))]
    elif kind == "alert":
        words.append(str(record.get("state")))
    elif "window_end_seq" in record:
        words += ["window_end_seq", str(record["window_end_seq"])]
    return " ".join(words)


def record_line(record: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k} = {show(v)}" for k, v in record.items()) + "}"
