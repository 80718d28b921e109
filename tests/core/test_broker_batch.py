"""Messages enqueued inside `one_round_trip` reach Redis together when it ends, each as
dramatiq would have queued it on its own."""

from __future__ import annotations

from collections.abc import Iterator

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker

from core.broker import one_round_trip
from testbed.redis_keys import own_broker

QUEUE = "batched"


@pytest.fixture
def broker(redis_url: str) -> Iterator[RedisBroker]:
    with own_broker(redis_url, "chatops-test-batch") as built:
        built.declare_queue(QUEUE)
        yield built


def queued(broker: RedisBroker) -> int:
    return int(broker.client.llen(f"{broker.namespace}:{QUEUE}"))


def message(number: int) -> dramatiq.Message:  # type: ignore[type-arg]
    return dramatiq.Message(
        queue_name=QUEUE, actor_name="run", args=(number,), kwargs={}, options={"n": number}
    )


def test_a_batch_is_sent_when_the_block_ends_and_each_message_arrives_whole(
    broker: RedisBroker,
) -> None:
    """Nothing reaches Redis while the block runs (one pipeline, not a round trip per
    message: if a dramatiq upgrade stops this, this fails); afterwards every message is
    queued and a consumer gets each, with its arguments and options."""
    # Given three messages enqueued in one block
    with one_round_trip(broker):
        sent = [broker.enqueue(message(n)) for n in range(3)]
        # Then none is in Redis yet
        assert queued(broker) == 0
    # And all three are once it ends
    assert queued(broker) == 3
    consumer = broker.consume(QUEUE, prefetch=3, timeout=1000)
    got = [next(consumer) for _ in range(3)]
    assert sorted((m.args, m.options["n"]) for m in got if m is not None) == [
        ((n,), n) for n in range(3)
    ]
    assert {m.message_id for m in got if m is not None} == {m.message_id for m in sent}
    consumer.close()


def test_outside_a_block_each_message_is_sent_at_once(broker: RedisBroker) -> None:
    """The broker is left as it was: a message enqueued after a block is queued at once."""
    with one_round_trip(broker):
        broker.enqueue(message(0))
    broker.enqueue(message(1))
    assert queued(broker) == 2
