"""`/metrics` of the running listener and worker, after a real mention flows through them.

The session stack runs `chatops serve` and `chatops worker` as child processes; the
listener serves its metrics on its HTTP port, the worker on WORKER_METRICS_PORT.
"""

from __future__ import annotations

import urllib.request
from typing import Any

import psycopg
from prometheus_client.parser import text_string_to_metric_families

from tests.support.conversation import mention, script_answer, unique_question, wait_for_answer
from tests.support.processes import wait_for
from tests.support.stack import Stack

DB = psycopg.Connection[dict[str, Any]]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def tenant_of(db: DB, event_id: str) -> str:
    row = db.execute(
        "SELECT tenant_id FROM inbound_requests WHERE external_id = %s", (event_id,)
    ).fetchone()
    assert row is not None
    return str(row["tenant_id"])


def test_listener_metrics_count_the_mention_and_its_ack(stack: Stack, llm) -> None:
    """The listener counts the app_mention it received and acked with 200, and times the ack."""
    before = scrape(stack.listener_metrics_url)
    question = unique_question("How long is the warranty?")
    script_answer(llm, question, "Two years.")

    post = mention(stack.slack, question)
    wait_for_answer(stack.slack, post.message.ts)

    after = scrape(stack.listener_metrics_url)
    for name, labels in (
        ("chatops_slack_events_received_total", {"type": "app_mention"}),
        ("chatops_slack_events_acked_total", {"type": "app_mention", "status": "200"}),
        ("chatops_slack_ack_seconds_count", {"type": "app_mention"}),
    ):
        assert value(after, name, **labels) == value(before, name, **labels) + 1, name
    # Queue and approval state is read from Redis and Postgres at each scrape.
    assert ("chatops_queue_messages", frozenset({("queue", "agent")})) in after
    assert ("chatops_queue_dead_messages", frozenset({("queue", "review")})) in after
    assert ("chatops_approval_decision_seconds_count", frozenset()) in after


def test_worker_metrics_count_the_job_steps_and_model_calls(stack: Stack, llm, db: DB) -> None:
    """The worker counts the job, its agent steps, its model calls and the tenant's tokens."""
    before = scrape(stack.worker_metrics_url)
    question = unique_question("Which regions do we ship to?")
    script_answer(llm, question, "Europe and North America.")

    post = mention(stack.slack, question)
    wait_for_answer(stack.slack, post.message.ts)
    tenant = tenant_of(db, post.deliveries[0].event_id)

    def job_counted() -> Samples | None:
        samples = scrape(stack.worker_metrics_url)
        job = {"queue": "agent", "actor": "run_request", "outcome": "ok"}
        done = value(samples, "chatops_jobs_total", **job) > value(
            before, "chatops_jobs_total", **job
        )
        return samples if done else None

    after: Samples = wait_for(job_counted, timeout=10, message="the job in the worker's metrics")

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("chatops_job_seconds_count", queue="agent", actor="run_request") >= 1
    assert grew("chatops_agent_steps_total", kind="plan") >= 1
    assert (
        grew("chatops_llm_calls_total", provider="primary", model="gpt-4o-mini", outcome="ok") >= 2
    )
    assert (
        grew("chatops_llm_tokens_total", tenant=tenant, model="gpt-4o-mini", direction="prompt") > 0
    )
    assert grew("chatops_llm_cost_usd_total", tenant=tenant, model="gpt-4o-mini") > 0
    assert grew("chatops_draft_seconds_count", source="slack") >= 1
    assert grew("chatops_draft_seconds_without_slow_llm_count", source="slack") >= 1
    assert value(after, "chatops_llm_circuit_state", provider="primary", state="closed") == 1.0
