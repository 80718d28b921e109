"""BROKER=rabbitmq: the same mention flows end to end through RabbitMQ instead of Redis.

Needs the local RabbitMQ on 127.0.0.1:5672 (guest/guest): skipped when it is missing,
except in CI. Queue names carry a namespace of this test's own and are deleted afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pika
import pytest
import redis

from sandbox.openai_emulator import OpenAIEmulator
from sandbox.slack_emulator import SlackEmulator
from testbed.markers import new_marker
from tests.support.conversation import mention, script_answer, unique_question, wait_for_answer
from tests.support.stack import Stack, product_env, start_stack

RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
QUEUES = ("agent", "review", "knowledge")


def rabbitmq_connection() -> pika.BlockingConnection:
    try:
        return pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    except pika.exceptions.AMQPError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no RabbitMQ answers at {RABBITMQ_URL}: {exc!r}")


def queue_exists(name: str) -> bool:
    connection = rabbitmq_connection()
    try:
        connection.channel().queue_declare(name, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker:
        return False  # 404: never declared
    finally:
        connection.close()


def delete_queues(namespace: str) -> list[str]:
    """Remove this test's queues (main, delay and dead-letter); return those that existed."""
    connection = rabbitmq_connection()
    deleted = []
    try:
        for queue in QUEUES:
            for name in (
                f"{namespace}.{queue}",
                f"{namespace}.{queue}.DQ",
                f"{namespace}.{queue}.XQ",
            ):
                channel = connection.channel()
                try:
                    channel.queue_declare(name, passive=True)
                except pika.exceptions.ChannelClosedByBroker:
                    continue  # 404: never declared
                channel.queue_delete(name)
                deleted.append(name)
                channel.close()
    finally:
        connection.close()
    return deleted


@pytest.fixture
def rabbitmq_stack(
    database_url: str,
    redis_url: str,
    queue_namespace: str,
    slack: SlackEmulator,
    llm_primary: OpenAIEmulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Stack, str]]:
    rabbitmq_connection().close()
    namespace = f"chatops-test-{new_marker(10)}"
    env = product_env(
        database_url=database_url,
        # Pointed at the session's Redis, which RabbitMQ mode must not need for its queue.
        redis_url=redis_url,
        namespace=namespace,
        slack=slack,
        llm_primary=llm_primary,
        llm_fallback=None,
    ) | {"BROKER": "rabbitmq", "RABBITMQ_URL": RABBITMQ_URL}
    previous_url = slack.events_url
    running = start_stack(slack, env, tmp_path_factory.mktemp("rabbitmq-logs"))
    try:
        yield running, namespace
    finally:
        running.stop()
        slack.events_url = previous_url
        delete_queues(namespace)


def test_a_mention_is_answered_through_rabbitmq(
    rabbitmq_stack: tuple[Stack, str], llm: OpenAIEmulator, redis_url: str
) -> None:
    """The listener queues on RabbitMQ, under the namespace, and the worker answers from it."""
    stack, namespace = rabbitmq_stack
    question = unique_question("What is the office wifi called?")
    script_answer(llm, question, "It is called chatops-guest.")

    post = mention(stack.slack, question)
    answer = wait_for_answer(stack.slack, post.message.ts)

    assert answer.text == "It is called chatops-guest."
    assert '"broker": "rabbitmq"' in stack.worker.log_text()
    # The job went through RabbitMQ, on a queue named under this stack's namespace, and
    # nothing was queued in Redis.
    assert queue_exists(f"{namespace}.agent")
    assert list(redis.Redis.from_url(redis_url).scan_iter(f"{namespace}*")) == []
