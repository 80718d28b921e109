"""The worker is ready for jobs before its personal-data detector has loaded (loading it
imports presidio, and with it spaCy, transformers and torch: seconds); a job that
arrives meanwhile waits for it, so no text reaches the model unscreened.

The jobs run on a Dramatiq worker in this process, declared by the worker's own
`declare_actors`, with the session's real Postgres, Slack emulator and LLM emulator; the
detector's load is held back until the test lets it finish.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

import dramatiq
import psycopg
import pytest
from dramatiq.brokers.stub import StubBroker

from bot.queue.jobs import enqueue_request
from bot.queue.worker import WarmUp, declare_actors, start_jobs_after
from core.db import open_pool
from core.queues import AGENT_QUEUE
from core.settings import load_settings
from core.warmup import Warming, WarmupFailed
from guardrails.at_rest import AtRestMasker
from guardrails.facade import build_guardrails
from guardrails.pii import PiiDetector, build_detector
from rag.embeddings import LoadedOnFirstUse
from tests.support.conversation import script_answer, wait_for_answer
from tests.support.stack import Stack
from tests.support.stored_mentions import store_mention
from tests.support.worker_deps import in_process_deps

DB = psycopg.Connection[dict[str, Any]]
ADDRESS = "ana.lopez@example.com"
HELD_FOR = 2.0  # seconds the detector's load is held back while a job waits for it


def test_a_job_arriving_before_the_detector_has_loaded_waits_for_it(
    stack: Stack, llm: Any, db: DB, database_url: str
) -> None:
    marker = f"[case {time.monotonic_ns():x}]"
    question = f"Please send the refund policy to {ADDRESS} {marker}"
    script_answer(llm, marker, "I've drafted the email with the refund policy.")

    # Given a worker whose detector is still loading
    release = threading.Event()

    def slow_detector() -> PiiDetector:
        release.wait(timeout=60)
        return build_detector()

    detector = Warming("the personal-data detector", slow_detector)
    settings = load_settings(database_url=database_url, slack_signing_secret="test-secret")
    pool = open_pool(database_url, max_size=4)
    deps = in_process_deps(stack, llm, pool, build_guardrails(settings, pool, detector))
    broker = StubBroker()
    broker.emit_after("process_boot")
    declare_actors(broker, deps)
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=50)
    detector.start()
    worker.start()
    try:
        # When a mention with an email address in it is queued
        stored = store_mention(db, stack, f"<@{stack.slack.bot_user_id}> {question}")
        request_id, ts = stored.request_id, stored.ts
        enqueue_request(broker, request_id, "app_mention", None)

        # Then, while the detector loads, nothing reaches the model and no answer comes
        time.sleep(HELD_FOR)
        assert not detector.ready
        assert llm.requests(marker) == []
        status = db.execute(
            "SELECT status FROM inbound_requests WHERE id = %s", (request_id,)
        ).fetchone()
        assert status is not None and status["status"] != "done"

        # And once it has loaded the person is answered, the address hidden from the model
        release.set()
        answer = wait_for_answer(stack.slack, ts, timeout=60)
        assert answer.text == "I've drafted the email with the refund policy."
        sent = json.dumps(llm.requests(marker))
        assert ADDRESS not in sent
        assert re.search(r"<EMAIL_\d+>", sent)
        broker.join(AGENT_QUEUE)
    finally:
        release.set()
        worker.stop()
        pool.close()


def test_text_is_never_passed_on_when_the_detector_failed_to_load(
    database_url: str,
) -> None:
    """A detector that cannot load screens nothing: every screen and every masking for
    storage raises, rather than letting the text through as it is."""

    def broken() -> PiiDetector:
        raise RuntimeError("the name tagger's model file is missing")

    detector = Warming("the personal-data detector", broken)
    settings = load_settings(database_url=database_url, slack_signing_secret="test-secret")
    pool = open_pool(database_url, max_size=2)
    try:
        guardrails = build_guardrails(settings, pool, detector)
        with pytest.raises(WarmupFailed, match="the personal-data detector could not be loaded"):
            guardrails.screen_inbound(1, "C1:1.0", f"Write to {ADDRESS}")
        with pytest.raises(WarmupFailed, match="model file is missing"):
            guardrails.redact_for_llm(1, "C1:1.0", f"Write to {ADDRESS}")
        masker = AtRestMasker()
        masker.adopt(detector)
        with pytest.raises(WarmupFailed):
            masker.mask("card 4111 1111 1111 1111")
    finally:
        pool.close()


def test_a_worker_whose_detector_failed_stops_and_says_why() -> None:
    stop = threading.Event()
    embedder = LoadedOnFirstUse(lambda: pytest.fail("the embedder must not load"), "m", 3)
    warmup = WarmUp(stop, embedder)

    def broken() -> PiiDetector:
        raise RuntimeError("the name tagger's model file is missing")

    Warming("the personal-data detector", broken).start(warmup.detector_done)

    assert stop.wait(timeout=10)
    assert warmup.failed == (
        "the personal-data detector could not be loaded: the name tagger's model file is missing"
    )


def test_a_job_held_for_the_detector_does_not_spend_its_time_limit_waiting() -> None:
    """A job whose time limit (1 s) is shorter than the wait for the detector still runs,
    and runs once, instead of being stopped for taking too long."""
    release = threading.Event()
    detector = Warming("the personal-data detector", lambda: release.wait(timeout=30))
    broker = StubBroker()
    broker.emit_after("process_boot")
    start_jobs_after(broker, detector)
    ran: list[float] = []
    quick = dramatiq.Actor(
        lambda: ran.append(time.monotonic()),
        broker=broker,
        actor_name="quick",
        queue_name="quick",
        priority=0,
        options={"time_limit": 1_000, "max_retries": 0},
    )
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        quick.send()
        time.sleep(2.0)
        assert ran == []
        release.set()
        broker.join("quick", fail_fast=True)
        worker.join()
        assert len(ran) == 1
    finally:
        release.set()
        worker.stop()
