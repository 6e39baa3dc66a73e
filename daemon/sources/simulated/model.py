"""The simulated sensors: what each one is (`SensorModel`) and where each one is (`SensorState`).

A sensor's readings are a pure function of `(seed, sensor index, seq)`: a base level in 20..80,
a slow sine drift (computed in float32), gaussian noise and, at `anomaly_rate`, a spike of
10..80 either way (so some spikes land outside the default 10..100 threshold filter and some
inside), reported to `decimals` places as a real sensor's converter would (the nearest float to
the decimal, so the wire prints it exactly and briefly). Whether read number `attempt` fails is
likewise a pure function of `(seed, sensor index, attempt)`. Nothing depends on timing or on how
readings are chunked into batches.

`SensorState` is what must survive a pipeline rebuild on reload so that no `(sensor_id, seq)`
repeats: next seq, read attempts, the last-known-good value and when it was read, whether the
sensor is reported down, and the failed reads held for interpolation (`HeldReads`). It lives in
the component's `ctx.carry`, as numpy arrays indexed by sensor, and only grows (shrinking
`sensors` keeps the others' state for a later regrowth).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from daemon.sensors import SENSORS
from daemon.sources.simulated import counter_rng as rng

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

UNITS = ("celsius", "percent")
_TWO_PI = 2.0 * np.pi


@dataclass(frozen=True)
class SensorModel:
    """Per-sensor parameters, as arrays indexed by the source's own sensor index 0..n-1."""

    ids: list[str]
    index: npt.NDArray[np.int32]  # into the process-wide `SENSORS` table
    base: F64
    amplitude: F64
    omega: F64  # drift radians per seq
    phase: F64
    noise_sd: F64
    noise_keys: rng.U64
    fault_keys: rng.U64
    anomaly_rate: float
    fault_rate: float
    decimals: int = 3

    @classmethod
    def build(
        cls,
        *,
        sensors: int,
        seed: int,
        rate_hz: float,
        id_prefix: str,
        anomaly_rate: float,
        fault_rate: float,
        decimals: int = 3,
    ) -> SensorModel:
        idx = np.arange(sensors, dtype=np.int64)
        keys = rng.stream_keys(seed, rng.PARAMS, idx)

        def u(n: int) -> F64:
            return rng.uniform(rng.draw(keys, np.full(sensors, n, dtype=np.int64)))

        units = np.where(u(5) < 0.5, 0, 1)
        ids = [f"{id_prefix}{i:04d}" for i in range(sensors)]
        index = np.fromiter(
            (SENSORS.intern(sid, UNITS[int(k)]) for sid, k in zip(ids, units, strict=True)),
            dtype=np.int32,
            count=sensors,
        )
        drift_hz = 0.002 + 0.018 * u(2)  # periods of roughly 50..500 s
        return cls(
            ids=ids,
            index=index,
            base=20.0 + 60.0 * u(0),
            amplitude=2.0 + 6.0 * u(1),
            omega=2.0 * np.pi * drift_hz / rate_hz,
            phase=2.0 * np.pi * u(3),
            noise_sd=0.5 + 1.5 * u(4),
            noise_keys=rng.stream_keys(seed, rng.NOISE, idx),
            fault_keys=rng.stream_keys(seed, rng.FAULT, idx),
            anomaly_rate=anomaly_rate,
            fault_rate=fault_rate,
            decimals=decimals,
        )

    def values(self, sensor: I64, seq: I64) -> F64:
        """The good-read value of each `(sensor[i], seq[i])`. One 64-bit draw per reading gives
        its noise (top 16 bits), whether it spikes (next 32) and the spike (low 16)."""
        angle = seq * self.omega[sensor] + self.phase[sensor]
        angle -= np.floor(angle * (1.0 / _TWO_PI)) * _TWO_PI  # in [0, 2pi), in float64
        # float32's sine is vectorised (float64's is a libm call per value: 3-5x the time);
        # it is ~3e-7 off, far below the readings' resolution.
        out: F64 = np.sin(angle.astype(np.float32)).astype(np.float64)
        out *= self.amplitude[sensor]
        out += self.base[sensor]
        bits = rng.draw(self.noise_keys[sensor], seq)
        out += self.noise_sd[sensor] * rng.normal(bits)
        if self.anomaly_rate > 0.0:
            hit = rng.middle_below(bits, self.anomaly_rate)
            if hit.any():
                side = rng.low(bits[hit]) * 2.0 - 1.0  # (-1, 1): direction and size
                out[hit] += np.where(side < 0.0, -10.0, 10.0) + 70.0 * side
        scale = 10.0**self.decimals
        out *= scale
        np.rint(out, out=out)
        out /= scale  # correctly rounded: the float nearest to the decimal
        return out

    def failed(self, sensor: I64, attempt: I64) -> Bools:
        """Whether read `attempt[i]` of `sensor[i]` fails."""
        return rng.below(rng.draw(self.fault_keys[sensor], attempt), self.fault_rate)

    def failed_one(self, sensor: int, attempt: int) -> bool:
        """`failed` for one read, without numpy (the per-tick path before any good read)."""
        bits = rng.draw_scalar(int(self.fault_keys[sensor]), attempt)
        return rng.below_scalar(bits, self.fault_rate)


@dataclass
class HeldReads:
    """Failed reads not emitted yet (`fallback = "interpolate"`): each waits for its sensor's
    next good read. Rows of any sensors (the source's own index), each sensor's in seq order;
    `count` per sensor says cheaply whether a batch's sensors hold any. Rare by nature (a
    sensor's latest reads failed), so they are kept as short arrays and rebuilt on change."""

    sensor: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    seq: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    ts: F64 = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    count: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.sensor.shape[0])

    def grow(self, sensors: int) -> None:
        extra = sensors - self.count.shape[0]
        if extra > 0:
            self.count = np.concatenate([self.count, np.zeros(extra, dtype=np.int64)])

    def any_of(self, sensors: I64) -> bool:
        return len(self) > 0 and bool(self.count[sensors].any())

    def add(self, sensor: I64, seq: I64, ts: F64) -> None:
        self.sensor = np.concatenate([self.sensor, sensor])
        self.seq = np.concatenate([self.seq, seq])
        self.ts = np.concatenate([self.ts, ts])
        np.add.at(self.count, sensor, 1)

    def take(self, sensors: I64 | None = None) -> tuple[I64, I64, F64]:
        """Remove and return the rows of `sensors` (None: every row)."""
        if sensors is None:
            pick = np.ones(len(self), dtype=np.bool_)
        else:
            mine = np.zeros(self.count.shape[0], dtype=np.bool_)
            mine[sensors] = True
            pick = mine[self.sensor]
        out = self.sensor[pick], self.seq[pick], self.ts[pick]
        keep = ~pick
        self.sensor, self.seq, self.ts = self.sensor[keep], self.seq[keep], self.ts[keep]
        np.subtract.at(self.count, out[0], 1)
        return out


@dataclass
class SensorState:
    next_seq: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    attempts: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    has_good: Bools = field(default_factory=lambda: np.zeros(0, dtype=np.bool_))
    last_value: F64 = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    last_good_ts: F64 = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    first_fail_ts: F64 = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    down: Bools = field(default_factory=lambda: np.zeros(0, dtype=np.bool_))
    # Across restarts (see `resume`): the seq this process's run began at, so `max_readings`
    # counts a run's readings; and the next seq after the last durably taken reading.
    run_start: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    taken: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    held: HeldReads = field(default_factory=HeldReads)

    @classmethod
    def in_carry(cls, carry: dict[str, Any], key: str, sensors: int) -> SensorState:
        """The state kept in `carry[key]`, created or grown to at least `sensors` sensors."""
        state = carry.get(key)
        if not isinstance(state, SensorState):
            state = carry[key] = cls()
        state.grow(sensors)
        return state

    def grow(self, sensors: int) -> None:
        extra = sensors - self.next_seq.shape[0]
        if extra <= 0:
            return
        self.next_seq = np.concatenate([self.next_seq, np.zeros(extra, dtype=np.int64)])
        self.attempts = np.concatenate([self.attempts, np.zeros(extra, dtype=np.int64)])
        self.has_good = np.concatenate([self.has_good, np.zeros(extra, dtype=np.bool_)])
        self.last_value = np.concatenate([self.last_value, np.full(extra, np.nan)])
        self.last_good_ts = np.concatenate([self.last_good_ts, np.full(extra, np.nan)])
        self.first_fail_ts = np.concatenate([self.first_fail_ts, np.full(extra, np.nan)])
        self.down = np.concatenate([self.down, np.zeros(extra, dtype=np.bool_)])
        self.run_start = np.concatenate([self.run_start, np.zeros(extra, dtype=np.int64)])
        self.taken = np.concatenate([self.taken, np.zeros(extra, dtype=np.int64)])
        self.held.grow(sensors)

    def resume(self, next_seq: I64) -> None:
        """Continue from a saved run: every sensor's seq goes on after the last durably taken
        reading (a reading in flight when the last run died is emitted again, the same value
        under the same `(sensor_id, seq)`: at-least-once); a run emits `max_readings` more."""
        self.grow(next_seq.shape[0])
        n = next_seq.shape[0]
        for column in (self.next_seq, self.attempts, self.taken):
            np.maximum(column[:n], next_seq, out=column[:n])
        self.run_start[:n] = self.next_seq[:n]
