"""The listener's health endpoints, as a load balancer or Kubernetes probes them."""

from __future__ import annotations

import json
import urllib.request

from tests.support.stack import Stack


def test_ready_when_postgres_and_redis_answer(stack: Stack) -> None:
    """/readyz is 200 and reports each dependency ok."""
    url = stack.events_url.replace("/slack/events", "/readyz")
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        assert json.loads(response.read()) == {"ready": True, "postgres": "ok", "redis": "ok"}
