"""What a failed read becomes: the simulated source's `fallback` key.

- `last_known_good` (the default, and what the source always did): the reading is emitted at
  once with the sensor's last good value, `quality = "stale"`.
- `interpolate`: the reading is held until the sensor's next good read, then emitted with the
  value on the straight line (in time) between the good reads on either side of it, rounded to
  the sensor's `decimals`, `quality = "interpolated"`. An estimate honestly needs both ends, so
  a held reading waits; `max_stale_s` bounds how long. A gap in which the sensor went without a
  good read for longer than `max_stale_s` (the moment it is reported `sensor_down`) is emitted
  as `last_known_good` instead, at once and from then on until a good read comes back: a line
  drawn across an outage would invent data, and holding readings for the whole outage would
  stall their delivery and grow without bound. When the stream ends (stop, reload,
  `max_readings`), whatever is still held is emitted as `last_known_good`, so every seq is
  delivered; on `force` it is not (it was never counted read, and a restart issues the seqs
  again from the last durably taken one).
- `none`: nothing is emitted for the failed read; it is counted `read_failures`, and its seq
  is skipped, so a consumer sees the gap.

Whichever it is, `stale` is true for every failed read (see `daemon.batch`), and the down and
recovered transitions are the same: they are about the sensor, not about what is emitted.

Why it is shaped this way: the source turns chunks into batches in one numpy pass
(`sim_generate`); interpolation joins it as a second pass over the same sensor-grouped rows,
taken only by batches that have a failed read or a held one, so the default path is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final, Literal

import numpy as np

from daemon.batch import Batch
from daemon.sources.simulated.model import F64, I64, Bools, SensorModel, SensorState

Fallback = Literal["last_known_good", "interpolate", "none"]
LAST_KNOWN_GOOD: Final = "last_known_good"
INTERPOLATE: Final = "interpolate"
NONE: Final = "none"


@dataclass(frozen=True)
class Rows:
    """One batch's rows grouped by sensor (group g is rows first[g]..last[g], the groups in
    sensor order), with each row's last-known-good `value` (a good read's own), the time of
    its sensor's last good read (`good_ts`; a good read's own) and whether the read failed."""

    sensor: I64  # the source's own sensor index
    seq: I64
    ts: F64
    value: F64
    good_ts: F64
    stale: Bools
    first: I64
    last: I64


@dataclass(frozen=True)
class Held:
    """Rows held from earlier batches for some sensors, with their sensor's last good read."""

    sensor: I64
    seq: I64
    ts: F64
    value: F64
    good_ts: F64


def without_failed(batch: Batch) -> tuple[Batch, int]:
    """`fallback = "none"`: the batch without its failed reads, and how many there were."""
    failed = int(np.count_nonzero(batch.stale))
    return (batch.select(~batch.stale) if failed else batch), failed


def held_for(state: SensorState, group_sensor: I64) -> Held | None:
    """Take the held rows of these sensors, each with its sensor's last good value and time
    (read before the batch commits the state). None if they hold none."""
    if not state.held.any_of(group_sensor):
        return None
    sensor, seq, ts = state.held.take(group_sensor)
    return Held(sensor, seq, ts, state.last_value[sensor], state.last_good_ts[sensor])


def fill_gaps(
    model: SensorModel, rows: Rows, held: Held | None, state: SensorState, max_stale_s: float
) -> Batch:
    """`fallback = "interpolate"` for one generated batch: the `held` rows go before their
    sensor's fresh ones; every failed read whose gap a good read closes (within `max_stale_s`)
    is interpolated, the open gaps within it are held in `state.held`, and the rest keep their
    last-known-good value. Returns the batch to emit."""
    if held is not None:
        rows = _with_held(rows, held)
    stale, ts, good_ts = rows.stale, rows.ts, rows.good_ts
    n = rows.seq.shape[0]
    group = np.repeat(np.arange(rows.first.shape[0]), rows.last - rows.first + 1)
    # the next good row at or after each row: a reversed running minimum; past its group's
    # end (or past the batch) means none yet
    nxt = np.where(stale, n, np.arange(n))
    nxt = np.minimum.accumulate(nxt[::-1])[::-1]
    right = np.minimum(nxt, n - 1)
    closed = (nxt < n) & (group[right] == group)
    # the last failed read of each row's gap: the longest its sensor went without a good read
    gap_end = np.where(closed, right - 1, rows.last[group])
    within = ts[gap_end] - good_ts <= max_stale_s
    fill = stale & closed & within
    hold = stale & ~closed & within
    value = rows.value
    if fill.any():
        value = value.copy()
        value[fill] = _on_the_line(rows, right, fill, model.decimals)
    sensor, seq = rows.sensor, rows.seq
    if hold.any():
        state.held.add(sensor[hold], seq[hold], ts[hold])
        keep = ~hold
        sensor, seq, ts, value, stale, fill = (
            a[keep] for a in (sensor, seq, ts, value, stale, fill)
        )
    return Batch(
        sensor=model.index[sensor],
        seq=seq,
        ts=ts,
        value=value,
        stale=stale,
        interpolated=fill if fill.any() else None,
    )


def release_held(model: SensorModel, state: SensorState) -> Batch | None:
    """Every held read as last-known-good, for the end of the stream (see the module doc)."""
    if not len(state.held):
        return None
    sensor, seq, ts = state.held.take()
    order = np.lexsort((seq, sensor))  # grouped by sensor, in seq order
    sensor, seq, ts = sensor[order], seq[order], ts[order]
    return Batch(
        sensor=model.index[sensor],
        seq=seq,
        ts=ts,
        value=state.last_value[sensor],
        stale=np.ones(sensor.shape[0], dtype=np.bool_),
    )


def _with_held(rows: Rows, held: Held) -> Rows:
    """`rows` with the held rows inserted before their sensor's fresh rows."""
    group = np.searchsorted(rows.sensor[rows.first], held.sensor)
    at = rows.first[group]  # np.insert keeps rows inserted at one place in their given order
    counts = np.bincount(group, minlength=rows.first.shape[0])
    before = np.cumsum(counts)
    return replace(
        rows,
        sensor=np.insert(rows.sensor, at, held.sensor),
        seq=np.insert(rows.seq, at, held.seq),
        ts=np.insert(rows.ts, at, held.ts),
        value=np.insert(rows.value, at, held.value),
        good_ts=np.insert(rows.good_ts, at, held.good_ts),
        stale=np.insert(rows.stale, at, True),
        first=rows.first + before - counts,
        last=rows.last + before,
    )


def _on_the_line(rows: Rows, right: I64, fill: Bools, decimals: int) -> F64:
    """The `fill` rows' values on the line from their last good read (its value is the row's
    last-known-good value, its time `good_ts`) to the next one (row `right`), in time."""
    to = right[fill]
    t0, t1 = rows.good_ts[fill], rows.ts[to]
    v0, v1 = rows.value[fill], rows.value[to]
    span = t1 - t0
    share = np.divide(rows.ts[fill] - t0, span, out=np.zeros_like(span), where=span > 0)
    out: F64 = v0 + (v1 - v0) * share
    scale = 10.0**decimals
    out *= scale
    np.rint(out, out=out)
    out /= scale  # the sensor's resolution, as its good reads are reported
    return out
