"""Candidate golden-set entries from real use: rated answers (👍 / 👎 with reasons) and the
reviewers' approval edits and rejections (review/feedback.py), for a person to confirm.

Each candidate is a golden case (bot/templates/golden.py) plus a `candidate` object: its
status, origin and what was said about it. `load_golden` refuses unknown keys, so an
entry cannot enter a regression set until a person has read it, finished it (usually the
model's `script` and sharper `expect` phrases) and deleted the `candidate` key: that
deletion is the confirmation.

What is prefilled, where the data allows it:
- 👍: the passages the run retrieved, and the titles of those it cited as `cited_sources`.
- 👎: the same passages; the reasons go in `candidate.reasons` (no phrase can be derived
  safely from "this is wrong", so `must_not_include` is left for the person).
- a reviewer's edit of a held answer: lines the reviewer added become `must_include`,
  lines removed `must_not_include`; of another action: the tool in `actions_proposed`.
- a rejection of an action: `actions_proposed: []` (this request should not have
  proposed it), with the reason.

Personal data: what the product stores is only partly redacted (proposed actions carry
placeholders; questions, answers shown to people and typed reasons are as written), so
every text of every candidate goes through `mask` (the guardrails' PII detector, masking
for good) before it is written. Nothing here relies on the stored text being clean.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from connectors.slack.tools import REPLY_IN_THREAD
from core.db import Conn
from rag.citations import cited_numbers

Mask = Callable[[str], str]
Candidate = dict[str, Any]

MENTION = re.compile(r"<@[A-Z0-9]+>")
MAX_PHRASE_CHARS = 200  # longer changed lines are not useful as must_(not_)include phrases
TO_CONFIRM = (
    "Check the request and expectations, add the model's replies as `script` to run it "
    "against the scripted emulator, then delete this `candidate` key to accept it."
)

_RATED_RUNS = """
    SELECT r.id AS run_id, r.conversation_id, r.template_name, q.payload,
           m.text AS answer, max(f.updated_at) AS rated_at,
           count(*) FILTER (WHERE f.rating = 'up') AS up,
           count(*) FILTER (WHERE f.rating = 'down') AS down,
           array_remove(array_agg(f.reason ORDER BY f.updated_at), NULL) AS reasons
    FROM answer_ratings f
    JOIN agent_runs r ON r.id = f.run_id AND r.tenant_id = f.tenant_id
    JOIN inbound_requests q ON q.id = r.request_id AND q.tenant_id = r.tenant_id
    LEFT JOIN messages m ON m.conversation_id = r.conversation_id AND m.role = 'assistant'
                        AND m.external_id = r.reply_ts AND m.tenant_id = r.tenant_id
    WHERE f.tenant_id = %(tenant)s AND f.updated_at >= %(since)s
      AND (%(template)s::text IS NULL OR r.template_name = %(template)s)
      AND (%(run)s::bigint IS NULL OR r.id = %(run)s)
    GROUP BY r.id, q.payload, m.text
    ORDER BY max(f.updated_at), r.id
"""

_REVIEWS = """
    SELECT f.id, f.kind, f.original, f.corrected, f.reason, f.template, f.created_at,
           a.tool, a.original_payload, a.conversation_id, a.run_id, q.payload
    FROM reviewer_feedback f
    LEFT JOIN pending_actions a ON a.id = f.action_id AND a.tenant_id = f.tenant_id
    LEFT JOIN agent_runs r ON r.id = a.run_id AND r.tenant_id = f.tenant_id
    LEFT JOIN inbound_requests q ON q.id = r.request_id AND q.tenant_id = f.tenant_id
    WHERE f.tenant_id = %(tenant)s AND f.created_at >= %(since)s
      AND (%(template)s::text IS NULL OR f.template = %(template)s)
      AND (%(review)s::bigint IS NULL OR f.id = %(review)s)
    ORDER BY f.created_at, f.id
"""


def golden_candidates(
    conn: Conn, *, tenant_id: int, since: datetime, template: str | None, mask: Mask
) -> Iterator[Candidate]:
    """Every candidate of the tenant since `since` (ratings first, then reviews), masked."""
    params = {
        "tenant": tenant_id,
        "since": since,
        "template": template,
        "run": None,
        "review": None,
    }
    for row in conn.execute(_RATED_RUNS, params).fetchall():
        yield _masked(_from_rating(conn, tenant_id, row, template), mask)
    for row in conn.execute(_REVIEWS, params).fetchall():
        yield _masked(_from_review(conn, tenant_id, row), mask)


def one_candidate(
    conn: Conn,
    *,
    tenant_id: int,
    run_id: int | None = None,
    review_id: int | None = None,
    mask: Mask,
) -> Candidate | None:
    """The candidate `golden_candidates` makes of one rated run or one reviewer's edit or
    rejection of the tenant, masked; None when the tenant has no such feedback."""
    params = {
        "tenant": tenant_id,
        "since": datetime.min.replace(tzinfo=UTC),
        "template": None,
        "run": run_id,
        "review": review_id,
    }
    if run_id is not None:
        row = conn.execute(_RATED_RUNS, params).fetchone()
        return _masked(_from_rating(conn, tenant_id, row, None), mask) if row else None
    if review_id is not None:
        row = conn.execute(_REVIEWS, params).fetchone()
        return _masked(_from_review(conn, tenant_id, row), mask) if row else None
    return None


def _from_rating(
    conn: Conn, tenant_id: int, row: dict[str, Any], template: str | None
) -> Candidate:
    passages = _retrieved(conn, tenant_id, row["run_id"])
    answer = row["answer"] or ""
    cited = [
        passages[int(n) - 1]["title"]
        for n in cited_numbers(answer, [])
        if n.isdigit() and 1 <= int(n) <= len(passages)
    ]
    down = row["down"] > 0
    event = (row["payload"] or {}).get("event") or {}
    expect: dict[str, Any] = {}
    if not down and cited:
        expect["cited_sources"] = list(dict.fromkeys(cited))
    return {
        "id": f"feedback-run-{row['run_id']}",
        "request": _question(event.get("text") or ""),
        "thread": _earlier_turns(conn, tenant_id, row["conversation_id"], event.get("ts")),
        "passages": passages,
        "expect": expect,
        "candidate": {
            "status": "candidate",
            "origin": "thumbs_down" if down else "thumbs_up",
            "template": row["template_name"] or template,
            "rated_at": row["rated_at"].isoformat(),
            "ratings": {"up": row["up"], "down": row["down"]},
            "reasons": list(row["reasons"]),
            "answer_given": answer,
            "to_confirm": TO_CONFIRM,
        },
    }


def _from_review(conn: Conn, tenant_id: int, row: dict[str, Any]) -> Candidate:
    tool: str | None = row["tool"]
    held_answer = tool == REPLY_IN_THREAD
    expect: dict[str, Any] = {}
    if row["kind"] == "edit":
        if held_answer:
            added, removed = _changed_lines(row["original"], row["corrected"] or "")
            expect = {"must_include": added, "must_not_include": removed}
        elif tool:
            expect = {"actions_proposed": [tool]}
        origin = "approval_edit"
    else:
        if not held_answer:
            expect = {"actions_proposed": []}  # this request should not have proposed it
        origin = "approval_rejection"
    event = (row["payload"] or {}).get("event") or {}
    request = _question(event.get("text") or "") or _first_question(
        conn, tenant_id, row["conversation_id"]
    )
    return {
        "id": f"feedback-review-{row['id']}",
        "request": request,
        "thread": _earlier_turns(conn, tenant_id, row["conversation_id"], event.get("ts")),
        "passages": _retrieved(conn, tenant_id, row["run_id"]) if row["run_id"] else [],
        "expect": expect,
        "candidate": {
            "status": "candidate",
            "origin": origin,
            "template": row["template"],
            "reviewed_at": row["created_at"].isoformat(),
            "tool": tool,
            "original": row["original"],
            "corrected": row["corrected"],
            "reason": row["reason"],
            "to_confirm": TO_CONFIRM,
        },
    }


def _retrieved(conn: Conn, tenant_id: int, run_id: int) -> list[dict[str, Any]]:
    """The passages the run's Retrieve step found, as golden passage fixtures."""
    step = conn.execute(
        """SELECT output FROM agent_steps WHERE run_id = %s AND tenant_id = %s
             AND kind = 'retrieve' ORDER BY position DESC LIMIT 1""",
        (run_id, tenant_id),
    ).fetchone()
    passages = (step["output"].get("passages") if step else None) or []
    return [
        {"id": str(p["id"]), "title": p["title"], "text": p["text"], "url": p.get("url")}
        for p in passages
    ]


def _earlier_turns(
    conn: Conn, tenant_id: int, conversation_id: int | None, before_ts: str | None
) -> list[dict[str, str]]:
    """The thread before the question, from the stored messages."""
    if conversation_id is None or before_ts is None:
        return []
    rows = conn.execute(
        """SELECT role, text, external_id FROM messages
           WHERE tenant_id = %s AND conversation_id = %s ORDER BY created_at, id""",
        (tenant_id, conversation_id),
    ).fetchall()
    return [
        {"role": row["role"], "content": _question(row["text"])}
        for row in rows
        if _ts(row["external_id"]) < _ts(before_ts) and row["text"].strip()
    ]


def _first_question(conn: Conn, tenant_id: int, conversation_id: int | None) -> str:
    if conversation_id is None:
        return ""
    row = conn.execute(
        """SELECT text FROM messages WHERE tenant_id = %s AND conversation_id = %s
             AND role = 'user' ORDER BY created_at, id LIMIT 1""",
        (tenant_id, conversation_id),
    ).fetchone()
    return _question(row["text"]) if row else ""


def _changed_lines(original: str, corrected: str) -> tuple[list[str], list[str]]:
    before = [line.strip() for line in original.splitlines() if line.strip()]
    after = [line.strip() for line in corrected.splitlines() if line.strip()]
    added = [line for line in after if line not in before and len(line) <= MAX_PHRASE_CHARS]
    removed = [line for line in before if line not in after and len(line) <= MAX_PHRASE_CHARS]
    return added, removed


def _question(text: str) -> str:
    """A message without the bot's @mention in front."""
    return MENTION.sub("", text).strip()


def _ts(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return float("inf")  # not a Slack ts (an email id): never "earlier"


# Keys whose values are the product's own identifiers and labels, never people's text.
_UNMASKED_KEYS = frozenset(
    {
        "id",
        "status",
        "origin",
        "template",
        "rated_at",
        "reviewed_at",
        "tool",
        "to_confirm",
        "role",
        "ratings",
    }
)


def _masked(value: Any, mask: Mask, key: str | None = None) -> Any:
    if key in _UNMASKED_KEYS:
        return value
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, list):
        return [_masked(item, mask) for item in value]
    if isinstance(value, dict):
        return {k: _masked(v, mask, k) for k, v in value.items()}
    return value
