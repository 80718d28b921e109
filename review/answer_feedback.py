"""People's 👍 / 👎 on answers: one rating per person per answer, the optional "what was
wrong" of a 👎, and the summary admins see with `/agent feedback`.

Ratings feed `chatops golden from-feedback` (review/golden_candidates.py); flagged
sources are in rag/source_flags.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from slack_sdk.models.blocks import InputBlock, PlainTextInputElement, PlainTextObject
from slack_sdk.models.views import View

from core.db import AsyncPool, Conn

Rating = Literal["up", "down"]

REASON_VIEW = "answer_feedback_reason"  # the 👎 modal's callback_id
REASON_BLOCK, REASON_INPUT = "what_was_wrong", "text"
REASON_MAX_CHARS = 1_000
SUMMARY_DAYS = 30
SUMMARY_FLAGS = 10  # flagged documents listed by `/agent feedback`


@dataclass(frozen=True)
class Rated:
    """A stored rating: the template of the rated run (None: no template), and whether
    this click gave a new rating (not the same one again)."""

    template: str | None
    new: bool


async def rate(
    pool: AsyncPool, *, tenant_id: int, run_id: int, user: str, rating: Rating
) -> Rated | None:
    """Record `user`'s rating of the tenant's run `run_id`; clicking again changes it.
    None when the tenant has no such run. A 👍 clears an earlier 👎's reason."""
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                """WITH before AS (
                     SELECT rating FROM answer_ratings
                     WHERE tenant_id = %(tenant)s AND run_id = %(run)s
                       AND slack_user_id = %(user)s)
                   INSERT INTO answer_ratings (tenant_id, run_id, slack_user_id, rating)
                   SELECT tenant_id, id, %(user)s, %(rating)s FROM agent_runs
                   WHERE id = %(run)s AND tenant_id = %(tenant)s
                   ON CONFLICT (run_id, slack_user_id) DO UPDATE
                     SET rating = EXCLUDED.rating, updated_at = now(),
                         reason = CASE WHEN EXCLUDED.rating = 'up' THEN NULL
                                       ELSE answer_ratings.reason END
                   RETURNING (SELECT rating FROM before) AS before,
                             (SELECT template_name FROM agent_runs
                              WHERE id = %(run)s AND tenant_id = %(tenant)s) AS template""",
                {"tenant": tenant_id, "run": run_id, "user": user, "rating": rating},
            )
        ).fetchone()
    if row is None:
        return None
    return Rated(template=row["template"], new=row["before"] != rating)


async def add_reason(
    pool: AsyncPool, *, tenant_id: int, run_id: int, user: str, reason: str
) -> bool:
    """Attach what was wrong to `user`'s 👎 of the run; False when there is no such 👎."""
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                """UPDATE answer_ratings SET reason = %s, updated_at = now()
                   WHERE tenant_id = %s AND run_id = %s AND slack_user_id = %s
                     AND rating = 'down'
                   RETURNING id""",
                (reason.strip()[:REASON_MAX_CHARS] or None, tenant_id, run_id, user),
            )
        ).fetchone()
    return row is not None


def reason_view(run_id: int, channel: str) -> dict[str, Any]:
    """The 👎 modal: one optional field. private_metadata names the run it is about."""
    return View(
        type="modal",
        callback_id=REASON_VIEW,
        private_metadata=json.dumps({"run": run_id, "channel": channel}),
        title=PlainTextObject(text="Thanks for the feedback"),
        submit=PlainTextObject(text="Send"),
        close=PlainTextObject(text="Skip"),
        blocks=[
            InputBlock(
                block_id=REASON_BLOCK,
                optional=True,
                label=PlainTextObject(text="What was wrong? (optional)"),
                element=PlainTextInputElement(
                    action_id=REASON_INPUT, multiline=True, max_length=REASON_MAX_CHARS
                ),
            )
        ],
    ).to_dict()


def submitted_reason(view: dict[str, Any]) -> tuple[int, str]:
    """(run id, reason) from a submitted 👎 modal."""
    run_id = int(json.loads(view.get("private_metadata") or "{}")["run"])
    values = (view.get("state") or {}).get("values") or {}
    reason = ((values.get(REASON_BLOCK) or {}).get(REASON_INPUT) or {}).get("value") or ""
    return run_id, str(reason)


_COUNTS = """SELECT count(*) FILTER (WHERE rating = 'up') AS up,
                      count(*) FILTER (WHERE rating = 'down') AS down,
                      count(*) FILTER (WHERE rating = 'down' AND reason IS NOT NULL)
                        AS with_reason
               FROM answer_ratings
               WHERE tenant_id = %(tenant)s
                 AND updated_at > now() - make_interval(days => %(days)s)"""
_FLAGGED = """SELECT d.title, count(*) AS people, max(f.created_at) AS last
               FROM knowledge_source_flags f
               JOIN knowledge_documents d
                 ON d.id = f.document_id AND d.content_hash = f.content_hash
               WHERE f.tenant_id = %(tenant)s
               GROUP BY d.id, d.title ORDER BY max(f.created_at) DESC LIMIT %(flags)s"""
_TARGET = "SELECT handoff_target FROM tenant_settings WHERE tenant_id = %(tenant)s"


def _summary_params(tenant_id: int) -> dict[str, Any]:
    return {"tenant": tenant_id, "days": SUMMARY_DAYS, "flags": SUMMARY_FLAGS}


async def feedback_summary(pool: AsyncPool, tenant_id: int) -> str:
    """What `/agent feedback` shows an admin: ratings of the last days, flagged sources
    still in effect, and who "Ask a human" reaches."""
    params = _summary_params(tenant_id)
    async with pool.connection() as conn:
        counts = await (await conn.execute(_COUNTS, params)).fetchone()
        flagged = await (await conn.execute(_FLAGGED, params)).fetchall()
        target = await (await conn.execute(_TARGET, params)).fetchone()
    return _summary_text(counts, flagged, target)


def feedback_summary_now(conn: Conn, tenant_id: int) -> str:
    """`feedback_summary` on a worker's connection (the view shown again after a click)."""
    params = _summary_params(tenant_id)
    counts = conn.execute(_COUNTS, params).fetchone()
    flagged = conn.execute(_FLAGGED, params).fetchall()
    target = conn.execute(_TARGET, params).fetchone()
    return _summary_text(counts, flagged, target)


def _summary_text(
    counts: dict[str, Any] | None,
    flagged: list[dict[str, Any]],
    target: dict[str, Any] | None,
) -> str:
    assert counts is not None
    lines = [
        f"*Feedback, last {SUMMARY_DAYS} days*",
        f"• 👍 {counts['up']} · 👎 {counts['down']} ({counts['with_reason']} with a reason); "
        "*Make a golden case* below (or `chatops golden from-feedback`) turns feedback "
        "into golden-set candidates",
    ]
    if flagged:
        lines.append("• Sources marked wrong or outdated (ranked lower until re-ingested):")
        lines.extend(
            f"    ◦ {row['title']}: {row['people']} "
            f"{'person' if row['people'] == 1 else 'people'}, last {row['last']:%Y-%m-%d}"
            for row in flagged
        )
    else:
        lines.append("• No sources are marked wrong or outdated.")
    handoff = target["handoff_target"] if target else None
    lines.append(
        f"• Ask a human reaches {handoff}"
        if handoff
        else "• Ask a human: nobody is set; `/agent handoff @person` sets who"
    )
    return "\n".join(lines)
