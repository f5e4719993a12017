"""When a consumer counts as stalled: the watchdog's verdict from positions and partition ends
(the consumer itself is a stand-in here; tests/test_backbone.py has the real one stalled,
reported and rebuilt over a real broker)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from aiokafka import TopicPartition

from exchange.service import DEFINITION as EXCHANGE
from shared.consumer import ConsumerSpec, ConsumerStalled, IdempotentConsumer
from shared.settings import KernelSettings
from shared.uow import UnitOfWork

EVENTS = TopicPartition("catalog.events", 0)
OTHER = TopicPartition("catalog.events", 1)
STALL = 60.0


class Positions:
    """What aiokafka would say: the partitions held, their ends, the consumer's positions."""

    def __init__(self) -> None:
        self.ends = {EVENTS: 10, OTHER: 4}
        self.positions = {EVENTS: 10, OTHER: 4}

    def assignment(self) -> set[TopicPartition]:
        return set(self.ends)

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.ends[tp] for tp in partitions}

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]


def _unit_of_work() -> UnitOfWork:
    raise AssertionError("the watchdog applies nothing")


@pytest.fixture
def consumer() -> IdempotentConsumer:
    settings = KernelSettings().model_copy(update={"consumer_stall_seconds": STALL})
    return IdempotentConsumer(
        service="exchange",
        spec=ConsumerSpec(name="copies", handlers={}),
        unit_of_work=_unit_of_work,
        processed_event=EXCHANGE.processed_event,
        settings=settings,
    )


async def test_a_position_unmoved_behind_the_end_for_the_stall_time_is_a_stall(
    consumer: IdempotentConsumer,
) -> None:
    kafka = Positions()
    seen = cast(Any, kafka)
    await consumer.check_progress(seen, 0.0)  # caught up: nothing to read
    kafka.ends[EVENTS] = 12  # two events arrive; none is fetched
    await consumer.check_progress(seen, 5.0)
    await consumer.check_progress(seen, 5.0 + STALL - 1)
    assert consumer.stalled is None
    with pytest.raises(ConsumerStalled):
        await consumer.check_progress(seen, 5.0 + STALL)
    assert consumer.stalled == f"catalog.events[0] at 10 of 12 for {STALL:g} s"
    assert consumer.stalls_total == 1

    # Rebuilt, back in its group without its partitions yet, then still fetching nothing:
    # still stalled, and the next verdict comes after a whole period again.
    kafka.ends, held = {}, kafka.ends
    await consumer.check_progress(seen, 5.0 + STALL + 2)
    kafka.ends = held
    await consumer.check_progress(seen, 5.0 + STALL + 5)
    assert consumer.stalled is not None
    assert consumer.stalls_total == 1
    kafka.positions[EVENTS] = 11  # it moves: the report clears
    await consumer.check_progress(seen, 5.0 + STALL + 10)
    assert consumer.stalled is None


async def test_a_consumer_moving_slowly_or_busy_applying_is_not_stalled(
    consumer: IdempotentConsumer,
) -> None:
    kafka = Positions()
    seen = cast(Any, kafka)
    kafka.ends[EVENTS] = 1_000
    for second in range(0, 300, 5):  # far behind, but moving
        kafka.positions[EVENTS] = 10 + second
        await consumer.check_progress(seen, float(second))
    # The loop was busy (waiting for a fact, or the database) for longer than the stall
    # time: the position did not move, but nothing was polled either.
    await consumer.check_progress(seen, 300.0 + STALL + 1, busy=True)
    await consumer.check_progress(seen, 300.0 + STALL + 6)
    assert consumer.stalled is None
    assert consumer.stalls_total == 0
