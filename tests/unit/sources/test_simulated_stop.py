"""Stopping many simulated sensors: a slice per turn of the loop, none queued after the stop,
and putters that leave the queue in constant time."""

from __future__ import annotations

import asyncio
import time

from daemon.sources.simulated.metronome import Metronome
from daemon.sources.simulated.run import _CANCEL_SLICE, END, ChunkQueue, SensorRun


async def test_a_halt_ends_the_sensors_a_slice_per_turn_of_the_loop() -> None:
    """Before: every sensor task cancelled in one turn (and `asyncio.wait` over them all), ~10 us
    each: with 100,000 sensors a stop held the loop over a second at a time. Now at most a
    slice ends per turn, phase by phase (a phase's tasks share their beat), whether they wait
    for their beat or for room in the queue."""
    sensors = 20_000
    run = SensorRun(queue=ChunkQueue(1), metronome=Metronome(2.0, sensors))
    run.queue.put_nowait((0, 0, 0, 1, 0.0))  # full: a put waits

    async def sensor(i: int) -> None:
        if i % 2:
            await run.metronome.beat(run.metronome.phase_of(i))
        else:
            await run.queue.put((i, 0, 0, 1, 0.0))

    for i in range(sensors):
        run.start(sensor(i))
    tasks = list(run.sensors)
    await asyncio.sleep(0)
    run.halt()
    ended_per_turn = []
    done = 0
    while done < sensors:
        await asyncio.sleep(0)
        now = sum(t.done() for t in tasks)
        ended_per_turn.append(now - done)
        done = now
    assert run.queue.qsize() == 1  # nothing queued after the halt
    assert max(ended_per_turn) <= _CANCEL_SLICE + sensors // run.metronome.phases
    assert len(ended_per_turn) >= sensors // (2 * _CANCEL_SLICE)


async def test_woken_then_cancelled_putters_leave_the_queue_in_constant_time() -> None:
    """asyncio.Queue removes a cancelled putter from a deque, O(n), and one that a get had
    already woken is not there: a full scan and a formatted repr, each. 20,000 of them took
    seconds; now their removal is O(1)."""
    queue = ChunkQueue(max_readings=1)
    queue.put_nowait((0, 0, 0, 1, 0.0))
    putters = [asyncio.create_task(queue.put((i, 0, 0, 1, 0.0))) for i in range(20_000)]
    await asyncio.sleep(0)
    for _ in range(10_000):  # wake half of them; none has run yet when all are cancelled
        queue.get_nowait()
        queue.put_nowait((0, 0, 0, 1, 0.0))
    started = time.perf_counter()
    for task in putters:
        task.cancel()
    await asyncio.wait(putters)
    assert time.perf_counter() - started < 1.0


async def test_a_halted_run_takes_no_chunk_but_end() -> None:
    run = SensorRun(queue=ChunkQueue(100), metronome=Metronome(0.1, 4))

    async def sensor() -> None:
        await asyncio.sleep(0)
        run.queue.put_nowait((0, 0, 0, 1, 0.0))  # after the halt: ends this sensor

    for _ in range(4):
        run.start(sensor())
    run.halt()
    await run.finished()
    assert run.queue.empty() and run.error is None and run.sensors == []
    run.queue.put_nowait(END)
    assert run.queue.get_nowait() is END


async def test_a_failed_sensor_ends_the_run_with_its_error() -> None:
    run = SensorRun(queue=ChunkQueue(100), metronome=Metronome(0.1, 3))

    async def failing() -> None:
        raise RuntimeError("sensor broke")

    async def waiting() -> None:
        await asyncio.sleep(60)

    run.start(failing())
    run.start(waiting())

    class Never:
        async def wait(self) -> None:
            await asyncio.sleep(60)

    async with asyncio.timeout(5):
        await run.supervise(Never())  # type: ignore[arg-type]
    assert isinstance(run.error, RuntimeError)
    assert run.queue.get_nowait() is END
