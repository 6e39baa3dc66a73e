"""Receipts: a source's batch is taken once it is delivered (or, behind a stage that holds parts
of batches, once a later batch is), or the drain ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from daemon.batch import Batch
from daemon.components import Source
from daemon.topology.receipts import Receipts
from tests.support import TestContext


@dataclass(frozen=True)
class NoConfig:
    pass


class Marking(Source[NoConfig]):
    def __init__(self) -> None:
        super().__init__(NoConfig(), TestContext("sources[0]"))
        self.taken_marks: list[object] = []

    async def stream(self) -> AsyncIterator[Batch]:  # pragma: no cover - not streamed here
        yield batch()

    def checkpoint(self, b: Batch) -> object | None:
        return int(b.seq[0])

    def taken(self, mark: object) -> None:
        self.taken_marks.append(mark)


def batch(first: int = 0, n: int = 4) -> Batch:
    seq = np.arange(first, first + n)
    return Batch.of_sensor("RECEIPT1", seq, 1.7e9 + seq, np.full(n, 20.0))


def test_a_delivered_batch_settles_itself_and_those_before_it() -> None:
    source, receipts = Marking(), Receipts()
    batches = [batch(4 * i) for i in range(3)]
    for b in batches:
        receipts.issue(source, b)
    receipts.delivered(batches[0])
    assert source.taken_marks == [0]  # at once: a broker's ack need not wait for more data
    receipts.delivered(batches[2])  # batch 1 was filtered away entirely
    assert source.taken_marks == [0, 4, 8]


def test_behind_a_stage_holding_parts_a_delivered_batch_settles_those_before_it() -> None:
    source, receipts = Marking(), Receipts(parts_held=True)
    batches = [batch(4 * i) for i in range(4)]
    for b in batches:
        receipts.issue(source, b)
    assert [b.ordinal for b in batches] == [0, 1, 2, 3]
    receipts.delivered(batches[0])
    assert source.taken_marks == []  # it may have been split: a later one proves it whole
    receipts.delivered(batches[2])  # batch 1 was filtered away entirely
    assert source.taken_marks == [0, 4]
    receipts.settle_all()
    assert source.taken_marks == [0, 4, 8, 12]
    receipts.settle_all()
    assert source.taken_marks == [0, 4, 8, 12]  # at most once each


def test_what_a_stage_makes_of_a_batch_keeps_its_place() -> None:
    source, receipts = Marking(), Receipts()
    first, second = batch(0), batch(4)
    receipts.issue(source, first)
    receipts.issue(source, second)
    kept = second.select(np.array([True, False, True, False]))
    assert kept.ordinal == 1
    assert Batch.concat([second, first]).ordinal == 0  # a merge is taken once all of it is
    receipts.delivered(kept)
    assert source.taken_marks == [0, 4]


def test_a_spool_replay_settles_nothing() -> None:
    source, receipts = Marking(), Receipts()
    receipts.issue(source, batch(0))
    receipts.issue(source, batch(4))
    receipts.delivered(batch(100))  # ordinal -1: not a source batch of this generation
    assert source.taken_marks == []


def test_after_an_abandoned_batch_nothing_is_settled() -> None:
    source, receipts = Marking(), Receipts()
    batches = [batch(4 * i) for i in range(3)]
    for b in batches:
        receipts.issue(source, b)
    receipts.delivered(batches[1])
    receipts.close()  # batch 1's successor was abandoned at a forced exit
    receipts.delivered(batches[2])
    receipts.settle_all()
    assert source.taken_marks == [0, 4]
