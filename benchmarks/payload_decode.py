"""The broker payload decoder alone: the typed (msgspec) path against the general path it falls
back to (the field rules one object at a time, orjson), interleaved, medians of 5.

`python -m benchmarks.payload_decode`. Not a test; nothing in the suite times this. The general
path is what `decode` did before the typed path existed, so the ratio is the speed-up.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence

from daemon.batch import Batch
from daemon.sources.messages.payload import Message, PayloadRules, decode, general

RULES = PayloadRules()
RUNS = 5


def reading(i: int, full: bool) -> dict[str, object]:
    r: dict[str, object] = {"sensor_id": f"m{i % 1000}", "value": 20.0 + (i % 600) / 10.0}
    if full:
        r.update(seq=i // 1000, ts=1.7e9 + i * 1e-4, unit="C", quality="ok")
    return r


def messages(count: int, per: int, full: bool) -> list[Message]:
    out = []
    for m in range(count):
        body: object = [reading(m * per + k, full) for k in range(per)]
        if per == 1:
            body = body[0]  # type: ignore[index]
        payload = json.dumps(body, separators=(",", ":")).encode()
        out.append(Message("plant/x/temp", payload, 1.8e9))
    return out


WORKLOADS = {
    "arrays, 6 fields, 100 x 100": messages(100, 100, True),
    "arrays, sensor_id + value, 100 x 100": messages(100, 100, False),
    "one reading a message, 8192 x 1": messages(8192, 1, True),
}


def typed(group: Sequence[Message]) -> int:
    return decode(group, RULES).readings


def plain(group: Sequence[Message]) -> int:
    batch: Batch | None = general(group, RULES, [])
    return 0 if batch is None else len(batch)


def rate(fn: Callable[[Sequence[Message]], int], group: list[Message]) -> float:
    """Readings per second of `fn` over `group`, repeated for at least 0.2 s."""
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < 0.2:
        done += fn(group)
    return done / elapsed


def main() -> None:
    for name, group in WORKLOADS.items():
        fast, slow = [], []
        for _ in range(RUNS):
            fast.append(rate(typed, group))
            slow.append(rate(plain, group))
        t, p = statistics.median(fast), statistics.median(slow)
        print(f"{name:40} typed {t / 1e6:6.2f}M/s  general {p / 1e6:6.2f}M/s  x{t / p:4.2f}")


if __name__ == "__main__":
    main()
