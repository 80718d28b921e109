"""Reviewers' edits and rejections, kept per tenant and template, fed to later drafts.

Relevance is full-text overlap with the new question (Postgres ts_rank over any shared
word), newest first among equals: cheap, explainable, and good enough for the
"same correction twice" case; the knowledge issue's embeddings can replace it later.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from psycopg import Connection

from guardrails.at_rest import default_masker

MAX_EXAMPLES = 3
WORD = re.compile(r"[a-z0-9]{3,}")


@dataclass(frozen=True)
class Correction:
    kind: str  # edit | reject
    original: str
    corrected: str | None
    reason: str | None


NO_TEMPLATE = "default"  # runs under no agent template share one set of corrections


def record(
    conn: Connection[dict[str, Any]],
    *,
    tenant_id: int,
    action_id: int,
    kind: str,
    original: str,
    corrected: str | None = None,
    reason: str | None = None,
) -> None:
    """Keep a reviewer's edit or rejection, under the agent template of the run that
    proposed the action, so that agent (and only it) learns from it."""
    # What an approver typed is stored like everything else: cards, SSNs, IBANs and
    # secrets masked for good (guardrails/at_rest.py).
    original, corrected, reason = default_masker().mask_deep((original, corrected, reason))
    conn.execute(
        """INSERT INTO reviewer_feedback
             (tenant_id, template, action_id, kind, original, corrected, reason)
           SELECT %s, coalesce(r.template_name, %s), %s, %s, %s, %s, %s
           FROM pending_actions a LEFT JOIN agent_runs r ON r.id = a.run_id
           WHERE a.id = %s AND a.tenant_id = %s""",
        (
            tenant_id,
            NO_TEMPLATE,
            action_id,
            kind,
            original,
            corrected,
            reason,
            action_id,
            tenant_id,
        ),
    )


def template_of(conn: Connection[dict[str, Any]], tenant_id: int, action_id: int) -> str:
    """The agent template of the run that proposed the action; NO_TEMPLATE for none."""
    row = conn.execute(
        """SELECT r.template_name FROM pending_actions a
           LEFT JOIN agent_runs r ON r.id = a.run_id AND r.tenant_id = a.tenant_id
           WHERE a.id = %s AND a.tenant_id = %s""",
        (action_id, tenant_id),
    ).fetchone()
    return (row["template_name"] if row else None) or NO_TEMPLATE


def add_reason(
    conn: Connection[dict[str, Any]], tenant_id: int, action_id: int, reason: str
) -> None:
    conn.execute(
        """UPDATE reviewer_feedback SET reason = %s
           WHERE tenant_id = %s AND action_id = %s AND kind = 'reject'""",
        (reason, tenant_id, action_id),
    )


def relevant(
    conn: Connection[dict[str, Any]], tenant_id: int, question: str, template: str | None
) -> list[Correction]:
    """The corrections reviewers made to this template's earlier drafts (`template`
    None: runs under no template) that share words with `question`, best first."""
    template = template or NO_TEMPLATE
    words = sorted(set(WORD.findall(question.lower())))
    if not words:
        return []
    rows = conn.execute(
        """SELECT kind, original, corrected, reason FROM reviewer_feedback
           WHERE tenant_id = %s AND template = %s
             AND search @@ to_tsquery('english', %s)
           ORDER BY ts_rank(search, to_tsquery('english', %s)) DESC, created_at DESC
           LIMIT %s""",
        (tenant_id, template, " | ".join(words), " | ".join(words), MAX_EXAMPLES),
    ).fetchall()
    return [Correction(**row) for row in rows]
