"""Turn queued sensor chunks into one multi-sensor Batch in a single numpy pass.

The sensor tasks only decide *how many* readings are due (a `Chunk`: which sensor, first seq,
first read attempt, count, first timestamp); the values are computed here, for all the chunks of
a batch at once. This is what makes thousands of sensors cheap: per tick a sensor pays a few
Python operations, and the numpy work is paid once per batch rather than once per sensor.

It is also where the carried `SensorState` is committed, as the batch is produced. A chunk that
was queued but never turned into a batch (the stream closed first) commits nothing, so a rebuilt
pipeline re-issues exactly those seqs: never a gap, never a repeat. With `interpolate` (the
`fallback` key, see `sim_fallback`) a failed read may be held in the state instead of emitted,
and emitted by a later batch of its sensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from daemon.batch import Batch
from daemon.observability.events import SENSOR_DOWN, SENSOR_RECOVERED
from daemon.sources.simulated.fallback import Rows, fill_gaps, held_for
from daemon.sources.simulated.model import F64, I64, Bools, SensorModel, SensorState

# (sensor, first seq, first read attempt, count, timestamp of the first reading)
Chunk = tuple[int, int, int, int, float]


@dataclass(frozen=True)
class Transition:
    """A sensor reported down (no good read for longer than `max_stale_s`) or back up."""

    event: str  # SENSOR_DOWN | SENSOR_RECOVERED
    sensor: int
    stale_s: float


@dataclass(frozen=True)
class _Rows:
    """The rows of a batch, grouped by sensor: group g is rows first[g] .. last[g]."""

    sensor: I64
    seq: I64
    attempt: I64
    ts: F64
    group_sensor: I64
    first: I64
    last: I64


def generate(
    model: SensorModel,
    state: SensorState,
    chunks: list[Chunk],
    rate_hz: float,
    max_stale_s: float,
    *,
    interpolate: bool = False,
) -> tuple[Batch, list[Transition]]:
    """The batch for `chunks` (in sensor-grouped order, seq order within a sensor), committing
    each sensor's state, and the down/recovered transitions it caused in row order. A failed
    read repeats the last good value, or with `interpolate` is interpolated or held."""
    rows = _expand(chunks, rate_hz)
    value = model.values(rows.sensor, rows.seq)
    stale: Bools
    if model.fault_rate > 0.0:
        stale = model.failed(rows.sensor, rows.attempt)
    else:
        stale = np.zeros(rows.seq.shape[0], dtype=np.bool_)
    held = held_for(state, rows.group_sensor) if interpolate else None  # before the commit
    transitions: list[Transition] = []
    failed = bool(stale.any())
    if failed:
        value, good_ts = _forward_fill(rows, value, stale, state)
        transitions = _transitions(rows, stale, good_ts, state, max_stale_s)
    else:
        good_ts = rows.ts
        if state.down[rows.group_sensor].any():
            transitions = _transitions(rows, stale, good_ts, state, max_stale_s)
    g = rows.group_sensor
    state.next_seq[g] = rows.seq[rows.last] + 1
    state.attempts[g] = rows.attempt[rows.last] + 1
    state.has_good[g] = True
    state.last_value[g] = value[rows.last]
    state.last_good_ts[g] = good_ts[rows.last]
    if interpolate and (failed or held is not None):
        fresh = Rows(rows.sensor, rows.seq, rows.ts, value, good_ts, stale, rows.first, rows.last)
        return fill_gaps(model, fresh, held, state, max_stale_s), transitions
    batch = Batch(
        sensor=model.index[rows.sensor],
        seq=rows.seq,
        ts=rows.ts,
        value=value,
        stale=stale,
    )
    return batch, transitions


def _expand(chunks: list[Chunk], rate_hz: float) -> _Rows:
    desc = np.array(chunks, dtype=np.float64)  # exact for integers below 2**53
    if desc.shape[0] > 1:
        desc = desc[np.argsort(desc[:, 0], kind="stable")]
    d_sensor = desc[:, 0].astype(np.int64)
    count = desc[:, 3].astype(np.int64)
    total = int(count.sum())
    start = np.cumsum(count) - count
    offset = np.arange(total, dtype=np.int64) - np.repeat(start, count)
    new_group = np.ones(d_sensor.shape[0], dtype=np.bool_)
    new_group[1:] = d_sensor[1:] != d_sensor[:-1]
    first = start[new_group]
    last = np.empty_like(first)
    last[:-1] = first[1:] - 1
    last[-1] = total - 1
    return _Rows(
        sensor=np.repeat(d_sensor, count),
        seq=np.repeat(desc[:, 1].astype(np.int64), count) + offset,
        attempt=np.repeat(desc[:, 2].astype(np.int64), count) + offset,
        ts=np.repeat(desc[:, 4], count) + offset / rate_hz,
        group_sensor=d_sensor[new_group],
        first=first,
        last=last,
    )


def _forward_fill(rows: _Rows, value: F64, stale: Bools, state: SensorState) -> tuple[F64, F64]:
    """Stale rows take the last-known-good value; returns values and last-good times per row.

    Vectorised across sensors: each group's first row is an anchor (its own value if good, the
    carried last-good value if stale), so a running maximum of anchor positions never crosses
    from one sensor into the next.
    """
    n = value.shape[0]
    good_ts = rows.ts.copy()
    anchor = np.zeros(n, dtype=np.bool_)
    anchor[rows.first] = True
    carried = anchor & stale
    carried_sensor = rows.sensor[carried]
    value[carried] = state.last_value[carried_sensor]
    good_ts[carried] = state.last_good_ts[carried_sensor]
    pos = np.where(anchor | ~stale, np.arange(n), 0)
    np.maximum.accumulate(pos, out=pos)
    return value[pos], good_ts[pos]


def _transitions(
    rows: _Rows, stale: Bools, good_ts: F64, state: SensorState, max_stale_s: float
) -> list[Transition]:
    """Walk only the groups where something changes: an up sensor that goes stale for too
    long, or a down sensor with a good read. Rare by nature, so a Python loop over them."""
    stale_s = rows.ts - good_ts
    exceeded = stale & (stale_s > max_stale_s)
    good = ~stale
    down = state.down[rows.group_sensor]
    any_exceeded = np.logical_or.reduceat(exceeded, rows.first)
    any_good = np.logical_or.reduceat(good, rows.first)
    out: list[Transition] = []
    for g in np.flatnonzero((~down & any_exceeded) | (down & any_good)):
        sensor = int(rows.group_sensor[g])
        is_down = bool(down[g])
        pos, end = int(rows.first[g]), int(rows.last[g]) + 1
        while pos < end:
            hits = np.flatnonzero((good if is_down else exceeded)[pos:end])
            if hits.shape[0] == 0:
                break
            row = pos + int(hits[0])
            if is_down:
                since = good_ts[row - 1] if row > rows.first[g] else _last_good(state, sensor)
                out.append(Transition(SENSOR_RECOVERED, sensor, float(rows.ts[row] - since)))
            else:
                out.append(Transition(SENSOR_DOWN, sensor, float(stale_s[row])))
            is_down = not is_down
            pos = row + 1
        state.down[sensor] = is_down
    return out


def _last_good(state: SensorState, sensor: int) -> float:
    """When `sensor` last read well before this batch (or first failed, if it never did)."""
    if state.has_good[sensor]:
        return float(state.last_good_ts[sensor])
    return float(state.first_fail_ts[sensor])
