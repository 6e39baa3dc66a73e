"""`/status` rates cover a trailing window of at least a second, whoever polls how often."""

from __future__ import annotations

from daemon.observability.status import RateWindow


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_first_call_is_the_mean_since_the_start() -> None:
    clock = Clock()
    window = RateWindow(clock, started=clock.now)
    clock.now += 4.0
    rates, elapsed = window.rates({"read": 400})
    assert (rates["read"], elapsed) == (100.0, 4.0)


def test_two_clients_polling_do_not_shorten_each_others_window() -> None:
    clock = Clock()
    window = RateWindow(clock, started=clock.now)
    total = 0
    for _ in range(40):  # two clients, each once a second, 10 readings per 0.1 s
        clock.now += 0.5
        total += 50
        rates, elapsed = window.rates({"read": total})
    assert elapsed >= 1.0
    assert rates["read"] == 100.0


def test_a_total_that_restarts_counts_from_zero() -> None:
    clock = Clock()
    window = RateWindow(clock, started=clock.now)
    clock.now += 1.0
    window.rates({"stages[0].in": 1000})
    clock.now += 1.0
    rates, _ = window.rates({"stages[0].in": 300})  # a reload rebuilt the stage's stats
    assert rates["stages[0].in"] == 300.0


def test_old_samples_are_let_go() -> None:
    clock = Clock()
    window = RateWindow(clock, started=clock.now)
    for i in range(1000):
        clock.now += 0.25
        window.rates({"read": i})
    assert len(window._samples) <= 12 / 0.25  # about HISTORY_S of them, not all 1,000
