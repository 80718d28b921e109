"""`chatops jobs dead` lists dead-lettered jobs and `chatops jobs retry` queues them again."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import dramatiq
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker

from testbed.markers import new_marker
from tests.support.processes import REPO


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    """A namespace of this test's own, so no running worker takes its jobs."""
    name = f"chatops-jobs-test-{new_marker(10)}"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{name}*"))
    if keys:
        client.delete(*keys)


def kill_job(broker: RedisBroker, request_id: int) -> str:
    """A run_request job that failed for good: the broker moves it to the dead letters."""
    message = dramatiq.Message(
        queue_name="agent",
        actor_name="run_request",
        args=(request_id,),
        kwargs={},
        options={
            "correlation_id": "c0ffee",
            "retries": 3,
            "traceback": "Traceback (most recent call last):\nRuntimeError: model down",
        },
    )
    broker.enqueue(message)
    consumer = broker.consume("agent", timeout=1000)
    delivered = next(consumer)
    consumer.nack(delivered)
    consumer.close()
    return message.message_id


def chatops_jobs(redis_url: str, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "QUEUE_NAMESPACE": namespace,
        # Required settings; `chatops jobs` never opens the database.
        "DATABASE_URL": "postgresql://unused@127.0.0.1:1/unused",
        "SLACK_SIGNING_SECRET": "unused",
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "jobs", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_dead_jobs_are_listed_and_retried(redis_url: str, namespace: str) -> None:
    """A dead job is listed with its actor, request and error, and a retry queues it afresh."""
    # Given a job that died on the agent queue
    broker = RedisBroker(url=redis_url, namespace=namespace)  # type: ignore[no-untyped-call]
    dead_id = kill_job(broker, request_id=41)
    client = redis.Redis.from_url(redis_url)

    # When the operator lists the dead jobs
    listed = chatops_jobs(redis_url, namespace, "dead")

    # Then it is there, with what is needed to decide whether to retry it
    assert listed.returncode == 0, listed.stderr
    [line] = listed.stdout.splitlines()
    assert dead_id in line
    assert "agent/run_request(41,)" in line
    assert "request=c0ffee" in line
    assert "RuntimeError: model down" in line

    # When they retry it
    retried = chatops_jobs(redis_url, namespace, "retry", dead_id)

    # Then it waits on its queue again, without its failure history, and is no longer dead
    assert retried.returncode == 0, retried.stderr
    assert client.zcard(f"{namespace}:agent.XQ") == 0
    [redis_id] = client.lrange(f"{namespace}:agent", 0, -1)
    queued = dramatiq.Message.decode(client.hget(f"{namespace}:agent.msgs", redis_id))
    assert (queued.actor_name, queued.args, queued.message_id) == ("run_request", (41,), dead_id)
    assert "retries" not in queued.options and "traceback" not in queued.options
    assert queued.options["correlation_id"] == "c0ffee"
    broker.close()


def test_retrying_an_unknown_id_says_so(redis_url: str, namespace: str) -> None:
    """An id that is not dead (any more) is reported and the command fails."""
    result = chatops_jobs(redis_url, namespace, "retry", "no-such-id")
    assert result.returncode == 1
    assert "no dead job no-such-id" in result.stderr
