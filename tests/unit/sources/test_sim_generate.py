"""Batch generation from chunks, and the counter-based random streams beneath it."""

from __future__ import annotations

import numpy as np
import pytest

from daemon.sources.simulated import counter_rng as rng
from daemon.sources.simulated.generate import Chunk, generate
from daemon.sources.simulated.model import SensorModel, SensorState

RATE = 100.0


def model(fault_rate: float = 0.0, sensors: int = 3) -> SensorModel:
    return SensorModel.build(
        sensors=sensors,
        seed=5,
        rate_hz=RATE,
        id_prefix="GEN",
        anomaly_rate=0.0,
        fault_rate=fault_rate,
    )


def test_scalar_and_vector_draws_agree() -> None:
    keys = rng.stream_keys(9, rng.FAULT, np.arange(4, dtype=np.int64))
    counters = np.array([0, 1, 2**40, 12345], dtype=np.int64)
    bits = rng.draw(keys, counters)
    for i in range(4):
        assert int(keys[i]) == rng.key_scalar(9, rng.FAULT, i)
        assert int(bits[i]) == rng.draw_scalar(int(keys[i]), int(counters[i]))
        for p in (0.0, 0.3, 0.5, 1.0, float(rng.uniform(bits)[i])):  # the last: right at it
            assert bool(rng.below(bits, p)[i]) == rng.below_scalar(int(bits[i]), p)
            assert bool(rng.below(bits, p)[i]) == (float(rng.uniform(bits)[i]) < p)


def test_streams_are_uniform_and_normal() -> None:
    keys = np.repeat(rng.stream_keys(1, rng.NOISE, np.arange(1, dtype=np.int64)), 200_000)
    bits = rng.draw(keys, np.arange(200_000, dtype=np.int64))
    u = rng.uniform(bits)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.005
    z = rng.normal(bits)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01
    assert abs((np.abs(z) < 1.0).mean() - 0.6827) < 0.005  # a bell, not merely unit variance
    low = rng.low(bits)
    assert low.min() > 0.0 and low.max() < 1.0 and abs(low.mean() - 0.5) < 0.005
    assert abs(rng.middle_below(bits, 0.05).mean() - 0.05) < 0.002
    assert rng.middle_below(bits, 1.0).all() and not rng.middle_below(bits, 0.0).any()
    other = rng.draw(np.repeat(rng.stream_keys(2, rng.NOISE, np.arange(1)), 1000), np.arange(1000))
    assert not np.array_equal(other, bits[:1000])  # another seed, another stream


def test_chunks_become_one_batch_grouped_by_sensor_in_seq_order() -> None:
    m, state = model(), SensorState()
    state.grow(3)
    chunks: list[Chunk] = [(2, 0, 0, 3, 1000.0), (0, 0, 0, 2, 1000.0), (2, 3, 3, 2, 1000.03)]
    batch, transitions = generate(m, state, chunks, RATE, max_stale_s=30.0)
    assert transitions == []
    ids = batch.sensor_ids().tolist()
    assert ids == ["GEN0000"] * 2 + ["GEN0002"] * 5
    assert batch.seq.tolist() == [0, 1, 0, 1, 2, 3, 4]
    np.testing.assert_allclose(batch.ts[2:], 1000.0 + np.arange(5) / RATE)
    assert state.next_seq.tolist() == [2, 0, 5]
    assert state.has_good.tolist() == [True, False, True]
    assert state.last_value[2] == batch.value[-1]
    assert not batch.stale.any()


def first_failing_attempt(m: SensorModel, sensor: int, after: int) -> int:
    attempt = after
    while not m.failed_one(sensor, attempt):
        attempt += 1
    return attempt


def test_a_batch_that_starts_stale_repeats_the_carried_good_value() -> None:
    m, state = model(fault_rate=0.5), SensorState()
    state.grow(3)
    attempt = first_failing_attempt(m, 1, after=10)
    state.has_good[1] = True
    state.last_value[1] = 123.25
    state.last_good_ts[1] = 999.0
    state.next_seq[1] = 40
    batch, _ = generate(m, state, [(1, 40, attempt, 6, 1000.0)], RATE, max_stale_s=30.0)
    expected_stale = m.failed(np.full(6, 1), attempt + np.arange(6))
    assert batch.stale.tolist() == expected_stale.tolist()
    assert batch.stale[0] and batch.value[0] == 123.25
    good = m.values(np.full(6, 1), 40 + np.arange(6))
    last = 123.25
    for i in range(6):
        last = last if expected_stale[i] else good[i]
        assert batch.value[i] == last


def test_the_first_good_read_after_failing_from_the_start_recovers() -> None:
    m, state = model(), SensorState()
    state.grow(3)
    state.down[0] = True  # reported down before any good read
    state.first_fail_ts[0] = 990.0
    _, transitions = generate(m, state, [(0, 0, 3, 2, 1000.0)], RATE, max_stale_s=5.0)
    assert [(t.event, t.sensor) for t in transitions] == [("sensor_recovered", 0)]
    assert transitions[0].stale_s == pytest.approx(10.0)
    assert not state.down[0]
