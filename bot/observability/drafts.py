"""How long a request waited for its draft: the measure behind the draft SLO ("95% of
drafts within 10 s of the mention, not counting model time beyond 8 s"), and what the
answer was (one of its template's answers, or a "not found") for the quality row."""

from __future__ import annotations

from typing import Any

from psycopg import Connection

from core.metrics import Metrics

LLM_ALLOWANCE = 8.0  # seconds of model time the SLO counts; anything beyond is the model's


def observe_draft(
    conn: Connection[dict[str, Any]], metrics: Metrics, request_id: int, *, within: float
) -> None:
    """Observe the request's draft time if it finished in the last `within` seconds (so a
    job that only found it already finished does not count it twice)."""
    row = conn.execute(
        """SELECT r.source,
                  extract(epoch FROM r.finished_at - r.received_at)::float8 AS seconds,
                  coalesce((SELECT sum(u.latency_ms) FROM llm_usage u
                            JOIN agent_runs a ON a.id = u.run_id
                            WHERE a.request_id = r.id AND u.tenant_id = r.tenant_id), 0)
                    ::float8 / 1000 AS llm_seconds
           FROM inbound_requests r
           WHERE r.id = %s AND r.finished_at >= now() - make_interval(secs => %s)""",
        (request_id, within),
    ).fetchone()
    if row is None:
        return
    seconds = max(0.0, row["seconds"])
    metrics.draft_seconds.labels(row["source"]).observe(seconds)
    beyond_allowance = max(0.0, row["llm_seconds"] - LLM_ALLOWANCE)
    metrics.draft_seconds_without_slow_llm.labels(row["source"]).observe(
        max(0.0, seconds - beyond_allowance)
    )

    count_answer(conn, metrics, request_id)


def count_answer(conn: Connection[dict[str, Any]], metrics: Metrics, request_id: int) -> None:
    """Count the request's answered run under its template, "not found" when its last
    Verify step said so. Runs with no Verify step (nothing drafted) are not answers."""
    row = conn.execute(
        """SELECT r.template_name,
                  (SELECT (s.output ->> 'not_found')::boolean FROM agent_steps s
                   WHERE s.run_id = r.id AND s.tenant_id = r.tenant_id AND s.kind = 'verify'
                   ORDER BY s.position DESC LIMIT 1) AS not_found
           FROM agent_runs r
           WHERE r.request_id = %s AND r.status = 'answered'
           ORDER BY r.id DESC LIMIT 1""",
        (request_id,),
    ).fetchone()
    if row is None or row["not_found"] is None:
        return
    metrics.count_answer(row["template_name"], not_found=bool(row["not_found"]))
