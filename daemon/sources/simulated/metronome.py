"""One timer that paces thousands of sensor tasks.

Why not `asyncio.sleep` in every sensor task: 10,000 timers firing 20,000 times a second cost
about twice as much as one timer resolving one shared future per beat. The metronome splits the
period into `phases` beats; beat k wakes the tasks waiting on phase `k % phases`, so the sensors'
work is spread evenly over the period instead of arriving as one burst.

The futures are shared, so cancelling one waiting task cancels the beat for its whole phase
(those tasks see CancelledError). The simulated source only ever cancels all its sensor tasks
together, on stop, which is exactly what that does.
"""

from __future__ import annotations

import asyncio

_BEAT_S = 0.01  # finest beat: at most 100 wake-ups of the metronome itself per second


class Metronome:
    def __init__(self, period_s: float, tasks: int) -> None:
        self.period_s = period_s
        self.phases = max(1, min(tasks, int(period_s / _BEAT_S)))
        self._beats: list[asyncio.Future[None] | None] = [None] * self.phases

    def phase_of(self, task_index: int) -> int:
        return task_index % self.phases

    def offset_s(self, phase: int) -> float:
        """When `phase` beats, after the start of each period."""
        return phase * self.period_s / self.phases

    def beat(self, phase: int) -> asyncio.Future[None]:
        """A future resolved at the next beat of `phase` (once per period); await it."""
        fut = self._beats[phase]
        if fut is None or fut.done():
            fut = self._beats[phase] = asyncio.get_running_loop().create_future()
        return fut

    async def run(self, origin: float) -> None:
        """Beat forever from `origin` (the loop's clock; cancel to stop): phase p beats at
        `origin + offset_s(p)` and every period after. The origin is the caller's, not this
        task's first step: starting 10,000 sensor tasks takes tens of milliseconds, and a
        schedule counted from after them would wake every sensor that much after its readings
        were due. After a stall longer than a period, every phase is woken once and the
        schedule resumes from now, rather than replaying missed beats."""
        loop = asyncio.get_running_loop()
        step = self.period_s / self.phases
        k = -1  # beat 0 is now: the first phase starts at once, not a step in
        while True:
            k += 1
            delay = origin + k * step - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay > self.period_s:
                for phase in range(self.phases):
                    self._pulse(phase)
                k = int((loop.time() - origin) / step)
                await asyncio.sleep(0)
                continue
            self._pulse(k % self.phases)
            if delay <= 0:
                # Late: the phase just woken runs before the next is, rather than several
                # phases' sensors in one burst that makes the loop later still.
                await asyncio.sleep(0)

    def _pulse(self, phase: int) -> None:
        fut = self._beats[phase]
        self._beats[phase] = None
        if fut is not None and not fut.done():
            fut.set_result(None)
