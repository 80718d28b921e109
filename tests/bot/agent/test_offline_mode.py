"""With no language model configured, the bot still answers, and says it is offline."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.slack_emulator import SlackEmulator
from testbed.markers import new_marker
from tests.support.conversation import mention, wait_for_answer
from tests.support.stack import Stack, product_env, start_stack


@pytest.fixture
def offline_stack(
    database_url: str,
    redis_url: str,
    queue_namespace: str,
    slack: SlackEmulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    env = product_env(
        database_url=database_url,
        redis_url=redis_url,
        # Its own queue, so the session's LLM-backed worker does not take these jobs.
        namespace=f"{queue_namespace}-offline",
        slack=slack,
        llm_primary=None,
        llm_fallback=None,
    )
    previous_url = slack.events_url
    running = start_stack(slack, env, tmp_path_factory.mktemp("offline-logs"))
    try:
        yield running
    finally:
        running.stop()
        slack.events_url = previous_url


def test_offline_mode_answers_and_labels_itself(offline_stack: Stack) -> None:
    """The reply is clearly labelled offline and says what it found, rather than inventing."""
    post = mention(offline_stack.slack, f"What is our refund policy? {new_marker(6)}")
    answer = wait_for_answer(offline_stack.slack, post.message.ts)
    assert answer.text.startswith("_Offline mode")
    assert "I found nothing in the knowledge base" in answer.text
    assert "llm.offline_mode" in offline_stack.worker.log_text()
