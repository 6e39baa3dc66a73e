"""The simulated source: N sensors, one asyncio task each, coalesced into multi-sensor batches.

Each sensor task wakes once per tick, `max(1/rate_hz, min_tick_s, sensors/max_wakeups_hz)`, and
queues one `Chunk` saying how many of its readings are due since the run started (capped at
`max_batch`, so a sensor that has fallen behind catches up in turns with the others). The last
term caps the CPU spent waking tasks (~5 us each): past 50,000 wake-ups a second, sensors tick
less often and emit several readings per tick; their timestamps are unaffected, but a reading
then waits up to a tick, less one reading's interval, to be emitted. 10,000 sensors at 10 Hz
tick every 0.2 s, two readings a tick (measured: 0.44 cores, latency p99 180 ms, loop lag p99
6 ms; ticking every 0.1 s: 0.85 cores, 159 ms, 22 ms; every 1 s: 0.22 cores, 987 ms, 3 ms).

The sensors' ticks are spread evenly over the tick (the metronome's phases), and each sensor's
schedule is offset by its phase: a reading is stamped with the time its sensor's tick was
scheduled and emitted at that tick. Stamped at the start of the period instead, a reading waited
for its sensor's phase, up to a whole tick, before it was even queued (benchmarks/OPTIMISATIONS.md
step 10 has the measurements).

The queue is bounded: when the pipeline is slow the sensors wait on `put` and fall behind;
nothing is dropped. `stream()` takes a chunk, coalesces whatever else is queued (up to
`max_batch` readings or `max_latency_ms`) and turns them into one batch in a single numpy pass
(see `sim_generate`). On stop it yields what is queued and ends; on force it ends at once.

Reads fail at `fault_rate`. Before a sensor's first good read a failure emits nothing: it counts
`read_failures` and the sensor tries again next tick. After that `fallback` says what a failure
emits (`sim_fallback`): the last-known-good value marked stale (the default), an interpolated
value once the next good read is in, or nothing. Past `max_stale_s` without a good read the
sensor is logged `sensor_down`, and `sensor_recovered` when a good read comes back.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import numpy as np

from daemon.batch import Batch
from daemon.components import Source
from daemon.config.fields import Range
from daemon.observability import events
from daemon.observability.events import SENSOR_DOWN
from daemon.runtime import ComponentContext
from daemon.sensors import SENSORS
from daemon.sources.simulated import fallback as fb
from daemon.sources.simulated.generate import Chunk, Transition, generate
from daemon.sources.simulated.metronome import Metronome
from daemon.sources.simulated.model import SensorModel, SensorState
from daemon.sources.simulated.run import END, ChunkQueue, SensorRun, split

_MAX_SEQ = 2**53  # chunks travel as float64 rows; seqs stay exact below this
# A beat may fire up to a millisecond early (the loop's timers have millisecond resolution): a
# reading due within this is taken at that beat rather than a whole tick later.
_EARLY_S = 0.002
_START_SLICE = 500  # sensor tasks started per turn of the loop


@dataclass(frozen=True)
class SimulatedConfig:
    """The `simulated` source's keys."""

    sensors: Annotated[
        int, Range(ge=1, le=1_000_000), "concurrent simulated sensors, one task each"
    ] = 100
    rate_hz: Annotated[
        float, Range(gt=0), "readings per second per sensor; backpressure throttles any excess"
    ] = 10.0
    max_readings: Annotated[
        int,
        Range(ge=0, le=_MAX_SEQ),
        "readings per sensor in a run (seq goes on across restarts); 0 = forever",
    ] = 0
    anomaly_rate: Annotated[float, Range(ge=0, le=1), "fraction of readings that spike"] = 0.05
    fault_rate: Annotated[
        float, Range(ge=0, le=1), "fraction of reads that fail (what they emit: `fallback`)"
    ] = 0.0
    fallback: Annotated[
        fb.Fallback,
        "a failed read emits: last_known_good (the last good value, quality stale); "
        "interpolate (held until the next good read, then quality interpolated; within "
        "max_stale_s, else as last_known_good); none (nothing, counted read_failures)",
    ] = fb.LAST_KNOWN_GOOD
    max_stale_s: Annotated[
        float,
        Range(gt=0),
        "seconds without a good read before a sensor is reported down (and interpolation ends)",
    ] = 30.0
    seed: Annotated[int, "seed of every sensor's values and faults"] = 42
    decimals: Annotated[
        int, Range(ge=0, le=6), "decimal places readings are reported to (their resolution)"
    ] = 3
    id_prefix: Annotated[str, "sensor ids are <prefix><index, 4+ digits>, e.g. S0007"] = "S"
    max_batch: Annotated[int, Range(ge=1, le=1_000_000), "readings per yielded batch"] = 8192
    max_latency_ms: Annotated[
        float, Range(gt=0), "longest the first reading of a batch waits for more"
    ] = 50.0
    min_tick_s: Annotated[
        float, Range(gt=0, le=60), "shortest interval between one sensor's ticks"
    ] = 0.05
    max_wakeups_hz: Annotated[
        float, Range(gt=0), "sensor ticks per second, all sensors together (caps CPU)"
    ] = 50_000.0
    queue_batches: Annotated[
        int, Range(ge=1, le=1000), "batches' worth of readings queued before sensors wait"
    ] = 4

    def tick_s(self) -> float:
        return max(1.0 / self.rate_hz, self.min_tick_s, self.sensors / self.max_wakeups_hz)


class SimulatedSource(Source[SimulatedConfig], name="simulated"):
    """Seeded simulated sensors with drift, noise, anomalies and read faults (one task each)."""

    def __init__(self, config: SimulatedConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self._model: SensorModel | None = None
        self._state = SensorState()
        self._sensors_down = 0  # the gauge, kept by the transitions rather than re-counted

    async def open(self) -> None:
        self._prepare()

    def _prepare(self) -> SensorModel:
        if self._model is None:
            cfg = self.config
            self._model = SensorModel.build(
                sensors=cfg.sensors,
                seed=cfg.seed,
                rate_hz=cfg.rate_hz,
                id_prefix=cfg.id_prefix,
                anomaly_rate=cfg.anomaly_rate,
                fault_rate=cfg.fault_rate,
                decimals=cfg.decimals,
            )
            key = self._key = f"simulated:{cfg.id_prefix}"
            first_in_process = key not in self.ctx.carry  # a reload keeps the carried state
            self._state = SensorState.in_carry(self.ctx.carry, key, cfg.sensors)
            if first_in_process:
                self._resume()
            self._sensors_down = int(self._state.down[: cfg.sensors].sum())
            self._local = np.full(len(SENSORS), -1, dtype=np.int64)  # SENSORS index -> ours
            self._local[self._model.index] = np.arange(cfg.sensors)
        return self._model

    def _resume(self) -> None:
        saved = self.ctx.restored(self._key)
        try:
            next_seq = np.asarray(saved["next_seq"], dtype=np.int64) if saved else None
        except (TypeError, KeyError, ValueError):
            next_seq = None
            self.ctx.log.warning(events.STATE_CORRUPT, key=self._key, error="no next_seq list")
        if next_seq is None or next_seq.ndim != 1 or (next_seq < 0).any():
            return
        self._state.resume(next_seq)
        self.ctx.log.info(
            events.SOURCE_RESUMED,
            source=self.ctx.label,
            key=self._key,
            sensors=int(next_seq.shape[0]),
            readings_before=int(next_seq.sum()),
        )

    def checkpoint(self, batch: Batch) -> object | None:
        return (batch.sensor, batch.seq) if len(batch) else None

    def taken(self, mark: object) -> None:
        """Every sensor's next seq after its last durably taken reading, saved for a restart."""
        assert isinstance(mark, tuple)
        sensor, seq = mark
        np.maximum.at(self._state.taken, self._local[sensor], seq + 1)
        self.ctx.persist(self._key, {"next_seq": self._state.taken})

    async def stream(self) -> AsyncGenerator[Batch, None]:
        model = self._prepare()
        cfg = self.config
        loop = asyncio.get_running_loop()
        run = SensorRun(
            queue=ChunkQueue(cfg.queue_batches * cfg.max_batch),
            metronome=Metronome(cfg.tick_s(), cfg.sensors),
        )
        helpers: list[asyncio.Task[None]] = []
        try:
            # Started in slices, each running up to its first beat: 10,000 tasks at once held
            # the loop ~30 ms. The schedule starts once they all wait, so none starts late.
            for i in range(cfg.sensors):
                run.start(self._sensor(i, run))
                if i % _START_SLICE == _START_SLICE - 1:
                    await asyncio.sleep(0)
            await asyncio.sleep(0)
            run.origin, run.wall = loop.time(), time.time()
            helpers += [
                asyncio.create_task(run.metronome.run(run.origin)),
                asyncio.create_task(run.supervise(self.ctx.stop)),
            ]
            async for batch in self._batches(run, model):
                yield batch
        finally:
            run.halt()  # the sensor tasks end in slices (see run.py); then the helpers
            await run.finished()
            for task in helpers:
                task.cancel()
            if helpers:
                await asyncio.wait(helpers)

    async def _sensor(self, i: int, run: SensorRun) -> None:
        """One sensor: each tick, queue a chunk of the readings due since the run started."""
        cfg = self.config
        state = self._state
        loop = asyncio.get_running_loop()
        rate, cap = cfg.rate_hz, cfg.max_batch
        # a run's readings: seq goes on from where the last run's delivery ended
        limit = min(int(state.run_start[i]) + (cfg.max_readings or _MAX_SEQ), _MAX_SEQ)
        seq, attempt = int(state.next_seq[i]), int(state.attempts[i])
        has_good = bool(state.has_good[i])
        queue = run.queue
        slots = 0  # schedule slots of this run used up (by readings or by failed first reads)
        phase = run.metronome.phase_of(i)
        offset = run.metronome.offset_s(phase)  # slot k is due at origin + offset + k / rate
        if seq < limit:
            await run.metronome.beat(phase)  # the first: the run's origin is set by now
        start, wall = run.origin + offset - _EARLY_S, run.wall + offset
        while seq < limit:
            due = int((loop.time() - start) * rate) - slots
            while due > 0:
                if not has_good:
                    # a failed read stands for the whole due range: it happened at its end
                    if self._first_read_failed(i, attempt, wall + (slots + due) / rate):
                        attempt += 1
                        slots += due  # one failed read per tick; the next tick tries again
                        break
                    has_good = True
                n = min(due, cap, limit - seq)
                chunk = (i, seq, attempt, n, wall + (slots + 1) / rate)
                if queue.full():
                    await queue.put(chunk)  # backpressure: wait for room
                else:
                    queue.put_nowait(chunk)
                seq, attempt, slots = seq + n, attempt + n, slots + n
                if n == due or seq >= limit:
                    break
                await asyncio.sleep(0)  # still behind: let the other sensors take a turn
                due = int((loop.time() - start) * rate) - slots
            if seq >= limit:
                break
            await run.metronome.beat(phase)

    def _first_read_failed(self, i: int, attempt: int, ts: float) -> bool:
        """Read `attempt` before any good read: on failure nothing is emitted, so the state is
        committed here (no chunk will carry it)."""
        model, state = self._prepare(), self._state
        if not model.failed_one(i, attempt):
            return False
        state.attempts[i] = attempt + 1
        self.ctx.count_read_failures()
        if math.isnan(state.first_fail_ts[i]):
            state.first_fail_ts[i] = ts
        stale_s = ts - float(state.first_fail_ts[i])
        if not state.down[i] and stale_s > self.config.max_stale_s:
            state.down[i] = True
            self._log([Transition(SENSOR_DOWN, i, stale_s)])
        return True

    async def _batches(self, run: SensorRun, model: SensorModel) -> AsyncIterator[Batch]:
        cfg = self.config
        loop = asyncio.get_running_loop()
        queue = run.queue
        latency_s = cfg.max_latency_ms / 1000.0
        leftover: list[Chunk] = []
        ended = False
        stop, force = self.ctx.stop, self.ctx.force
        interpolate = cfg.fallback == fb.INTERPOLATE
        while not ended:
            if stop.is_set():
                run.halt()  # now, not when the supervisor next runs: drain only what is queued
            if force.is_set():
                return  # exit now: what is queued was never read, so nothing is lost
            item = leftover.pop() if leftover else await queue.get()
            if item is END:
                break
            deadline = loop.time() + latency_s
            chunks: list[Chunk] = []
            room = cfg.max_batch
            while True:
                if item[3] > room:
                    item, rest = split(item, room, cfg.rate_hz)
                    leftover.append(rest)
                chunks.append(item)
                room -= item[3]
                if room == 0:
                    break
                nxt = await queue.get_within(deadline - loop.time())
                if nxt is None:
                    break
                if nxt is END:
                    ended = True
                    break
                item = nxt
            batch, transitions = generate(
                model, self._state, chunks, cfg.rate_hz, cfg.max_stale_s, interpolate=interpolate
            )
            batch = self._settle(batch, transitions, queue.readings)
            if len(batch):  # all of it failed (none) or is held (interpolate): nothing to yield
                yield batch
        if run.error is not None:
            raise run.error
        if (held := fb.release_held(model, self._state)) is not None:
            yield held  # the stream ends: what waits for a good read goes as last-known-good

    def _settle(self, batch: Batch, transitions: list[Transition], queued: int) -> Batch:
        """A generated batch as it is emitted (`fallback = "none"` drops its failed reads), its
        transitions logged and the gauges updated."""
        if self.config.fallback == fb.NONE:
            batch, failed = fb.without_failed(batch)
            self.ctx.count_read_failures(failed)
        if transitions:
            self._log(transitions)
        gauge = self.ctx.gauge()
        gauge.update(queued_readings=queued, sensors_down=self._sensors_down)
        if self.config.fallback == fb.INTERPOLATE:
            gauge["held_reads"] = len(self._state.held)
        return batch

    def _log(self, transitions: list[Transition]) -> None:
        ids = self._prepare().ids
        log = self.ctx.log
        for t in transitions:
            down = t.event == SENSOR_DOWN
            self._sensors_down += 1 if down else -1
            emit = log.warning if down else log.info
            emit(t.event, sensor_id=ids[t.sensor], stale_s=t.stale_s)
