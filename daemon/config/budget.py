"""The worst-case memory of a config, estimated before anything runs, and refused past a bound.

Why: every key is bounded on its own, but not their products. With all limits at their maximum
the daemon reached 6 GiB in 15 s: a million sensors' tasks and windows, 100,000 queued batches
of a million readings. The estimate multiplies out what each knob can hold at once, and
`parse_config` refuses (exit 78) a config whose total exceeds `[daemon] memory_max_bytes`
(default 2 GiB), naming the keys of the largest parts, so `validate` says it before a run does.

The factors are peak RSS measured on the 2-vCPU VM (`benchmarks`' configs, a slow blackhole
sink so every queue fills), rounded up:
- the process: 75 MB; plus the encoder's shared slots (100 MiB, touched as used) and the free
  heap glibc is told to keep (topology/memory.py): `BASE` 200 MiB.
- a simulated sensor: 1.6 KB (its task, coroutine, state and id): 2.5 KB.
- a reading in a queued batch (five columns): 30 B: 40 B. A queued chunk of the simulated
  source (one tuple): 200 B; each holds at least `rate_hz * tick` readings.
- a reading of the largest batch, in flight through the stages and the encoder (each stage
  holds one or two, the encoder several, and a batch too big for its shared slot is encoded in
  process): 1.4 KB at 262,144 and at 1,000,000 readings a batch: 1.5 KB.
- window state: 8 B a value (16 for `features`: value and ts), twice (arrays grow by doubling).
  A `features` batch hands at most `max_batch` readings' worth of newly completed windows to
  the pool, plus windows already full when a burst completes them all; `max_pending` of those
  are in flight, the ones on the pool's queue pickled a second time. A worker process: 80 MiB.
Checked against measurements: 100,000 sensors with every stage (features window 256) ran at
1.25 GB, estimated 2.0 GB; 1,000,000-reading batches at 1.5 GB, estimated 1.75 GB.

What it cannot know: how many distinct sensors a file holds (windows grow with them), and
third-party components, unless their config says (`worst_case_bytes() -> int`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from daemon.config.core import ConfigIssue

if TYPE_CHECKING:
    from daemon.config.loader import AppConfig, ComponentSpec

KIB: Final = 1024
MIB: Final = 1024 * KIB
GIB: Final = 1024 * MIB
DEFAULT_MAX_BYTES: Final = 2 * GIB

BASE: Final = 200 * MIB
SENSOR: Final = 2560
QUEUED_READING: Final = 40
CHUNK: Final = 200
IN_FLIGHT_READING: Final = 1536
WORKER: Final = 80 * MIB
FORKSERVER: Final = 40 * MIB
LINE_OBJECT: Final = 42  # a line split out of a read: a bytes object and its list slot


@dataclass(frozen=True)
class Part:
    """One term of the estimate: its bytes, the keys whose product it is, and what it is."""

    bytes: int
    keys: tuple[str, ...]
    what: str


def estimate(app: AppConfig) -> list[Part]:
    """The parts of the worst case, largest first (their sum is the estimate)."""
    parts = [Part(BASE, (), "the process, the encoder's slots, the kept free heap")]
    batch = max((_max_batch(s) for s in app.sources), default=1)
    largest = next((s for s in app.sources if _max_batch(s) == batch), None)
    if largest is not None:
        parts.append(
            Part(batch * IN_FLIGHT_READING, (f"{largest.label}.max_batch",), "batches in flight")
        )
        parts.append(
            Part(
                app.daemon.queue_batches * batch * QUEUED_READING,
                ("daemon.queue_batches", f"{largest.label}.max_batch"),
                "the queue between sources and stages",
            )
        )
    sensors = sum(_sensors(s) for s in app.sources)
    sensor_keys = tuple(f"{s.label}.sensors" for s in app.sources if _sensors(s))
    for spec in app.sources:
        parts += _source(spec)
    for spec in app.stages:
        parts += _stage(spec, sensors, sensor_keys, batch)
    for spec in (*app.stages, *app.sinks):
        parts += _declared(spec)
    return sorted((p for p in parts if p.bytes > 0), key=lambda p: -p.bytes)


def check(app: AppConfig) -> list[ConfigIssue]:
    """One issue if the estimate exceeds `daemon.memory_max_bytes`, naming the largest parts."""
    parts = estimate(app)
    total = sum(p.bytes for p in parts)
    limit = app.daemon.memory_max_bytes
    if total <= limit:
        return []
    named = [p for p in parts if p.keys][:3]
    detail = "; ".join(f"{p.what} ({' x '.join(p.keys)}): {_size(p.bytes)}" for p in named)
    path = ", ".join(named[0].keys) if named else "daemon.memory_max_bytes"
    return [
        ConfigIssue(
            path,
            f"the worst case needs ~{_size(total)} of memory, more than daemon.memory_max_bytes"
            f" ({_size(limit)}); the largest parts: {detail}. Lower these, or raise"
            " daemon.memory_max_bytes if the machine has the memory",
        )
    ]


def total_bytes(app: AppConfig) -> int:
    return sum(p.bytes for p in estimate(app))


def _source(spec: ComponentSpec) -> list[Part]:
    c, label = spec.config, spec.label
    if spec.name == "simulated":
        per_chunk = max(1, min(c.max_batch, int(c.rate_hz * c.tick_s())))
        chunks = c.queue_batches * c.max_batch // per_chunk + c.sensors
        return [
            Part(c.sensors * SENSOR, (f"{label}.sensors",), "simulated sensors"),
            Part(
                chunks * CHUNK,
                (f"{label}.queue_batches", f"{label}.max_batch"),
                "the simulated source's queue",
            ),
        ]
    if spec.name == "file":
        read = c.read_bytes + c.max_line_bytes
        return [
            Part(read * 2, (f"{label}.read_bytes", f"{label}.max_line_bytes"), "file reads"),
            # the worst read is all two-byte lines, each a bytes object until parsed
            Part(c.read_bytes // 2 * LINE_OBJECT, (f"{label}.read_bytes",), "a read's lines"),
        ]
    return _declared(spec)


def _stage(
    spec: ComponentSpec, sensors: int, sensor_keys: tuple[str, ...], batch: int
) -> list[Part]:
    c, label = spec.config, spec.label
    window_keys = (f"{label}.window", *sensor_keys)
    if spec.name in ("normalize", "moving_average"):
        return [Part(sensors * c.window * 8 * 2, window_keys, f"{spec.name} windows")]
    if spec.name != "features":
        return []
    pending = c.max_pending * batch + min(sensors, c.max_pending * batch) * c.window
    copies = 1 + min(c.max_pending, 2 * c.workers + 1) / c.max_pending
    return [
        Part(sensors * c.window * 16 * 2, window_keys, "features windows"),
        Part(
            int(pending * 16 * copies),
            (f"{label}.max_pending", f"{label}.window", *sensor_keys),
            "completed windows on their way to the pool",
        ),
        Part(
            c.workers * WORKER + (FORKSERVER if c.workers else 0),
            (f"{label}.workers",),
            "feature worker processes",
        ),
    ]


def _declared(spec: ComponentSpec) -> list[Part]:
    """A third-party component's own worst case, if its config declares one."""
    if spec.name in _BUILT_IN:
        return []
    declare = getattr(spec.config, "worst_case_bytes", None)
    if not callable(declare):
        return []
    return [Part(int(declare()), (f"{spec.label}",), f"{spec.name} ({spec.label})")]


_BUILT_IN: Final = frozenset(
    {"simulated", "file", "threshold_filter", "normalize", "moving_average", "features"}
    | {"jsonl", "console", "blackhole"}
)


def _max_batch(spec: ComponentSpec) -> int:
    value: Any = getattr(spec.config, "max_batch", 1)
    return int(value) if isinstance(value, int) else 1


def _sensors(spec: ComponentSpec) -> int:
    return int(spec.config.sensors) if spec.name == "simulated" else 0


def _size(n: float) -> str:
    for unit, size in (("GiB", GIB), ("MiB", MIB)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / KIB:.0f} KiB"
