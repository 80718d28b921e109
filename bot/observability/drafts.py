"""How long a request waited for its draft: the measure behind the draft SLO ("95% of
drafts within 10 s of the mention, not counting model time beyond 8 s"), and what the
answer was (one of its template's answers, or a "not found") for the quality row."""

from __future__ import annotations

from typing import Any

from psycopg import Connection

from core.metrics import Metrics
from core.store import requests

LLM_ALLOWANCE = 8.0  # seconds of model time the SLO counts; anything beyond is the model's


def observe_draft(
    conn: Connection[dict[str, Any]], metrics: Metrics, request_id: int, *, within: float
) -> None:
    """Observe the request's draft time if it finished in the last `within` seconds (so a
    job that only found it already finished does not count it twice)."""
    timing = requests.draft_time(conn, request_id, finished_within=within)
    if timing is None:
        return
    seconds = max(0.0, timing.seconds)
    metrics.draft_seconds.labels(timing.source).observe(seconds)
    beyond_allowance = max(0.0, timing.llm_seconds - LLM_ALLOWANCE)
    metrics.draft_seconds_without_slow_llm.labels(timing.source).observe(
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
