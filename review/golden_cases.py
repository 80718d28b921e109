"""One click from feedback to a golden-set candidate: the `/agent feedback` view lists the
latest 👎 with a reason, approvers' edits and rejections, each with a "Make a golden case"
button.

The click is for admins (the listener checks with review/authority.py before storing it,
like every changing `/agent` command); a worker job then makes the candidate
`chatops golden from-feedback` would print for that feedback (review/golden_candidates.py,
every text through the guardrails' PII redactor), keeps it in `golden_candidates`,
audits it, and replaces the view through the click's response_url: that item now says
who added it and how to accept it (`chatops golden saved` writes the kept candidates out
for a person to finish and add to the template's golden set).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from psycopg.types.json import Jsonb
from slack_sdk.models.blocks import (
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.webhook import WebhookClient

from core.db import AsyncPool, Conn
from core.store import audit
from guardrails.at_rest import default_masker
from review.golden_candidates import Mask, one_candidate
from review.messages import mrkdwn_safe, people_summary

log = structlog.get_logger(__name__)

GOLDEN_BUTTON = "feedback_golden_case"  # the button's action_id
GOLDEN_KIND = "golden_case"  # the stored request a click becomes (a review-queue job)
ITEMS_DAYS = 30
ITEMS_MAX = 5  # of each: 👎 with a reason, and edits or rejections
EXCERPT_CHARS = 120
NO_TEMPLATE = "default"  # review/feedback.py's name for runs under no agent template

_THUMBS_DOWN = """
    SELECT r.id AS run_id, r.template_name AS template, r.reply_ts, q.payload,
           max(f.updated_at) AS at, count(*) AS people,
           (array_agg(f.reason ORDER BY f.updated_at DESC))[1] AS reason,
           g.created_by AS added_by
    FROM answer_ratings f
    JOIN agent_runs r ON r.id = f.run_id AND r.tenant_id = f.tenant_id
    JOIN inbound_requests q ON q.id = r.request_id AND q.tenant_id = r.tenant_id
    LEFT JOIN golden_candidates g ON g.tenant_id = f.tenant_id AND g.source = 'run:' || r.id
    WHERE f.tenant_id = %(tenant)s AND f.rating = 'down' AND f.reason IS NOT NULL
      AND f.updated_at > now() - make_interval(days => %(days)s)
    GROUP BY r.id, r.reply_ts, q.payload, g.created_by
    ORDER BY max(f.updated_at) DESC LIMIT %(limit)s
"""

_REVIEWS = """
    SELECT f.id AS review_id, f.kind, f.reason, f.template, f.created_at AS at,
           a.summary, a.shown, a.edited_by, a.decided_by, g.created_by AS added_by
    FROM reviewer_feedback f
    JOIN pending_actions a ON a.id = f.action_id AND a.tenant_id = f.tenant_id
    LEFT JOIN golden_candidates g ON g.tenant_id = f.tenant_id AND g.source = 'review:' || f.id
    WHERE f.tenant_id = %(tenant)s AND f.created_at > now() - make_interval(days => %(days)s)
    ORDER BY f.created_at DESC LIMIT %(limit)s
"""

_TEAM = "SELECT team_id FROM slack_installations WHERE tenant_id = %(tenant)s LIMIT 1"


@dataclass(frozen=True)
class Item:
    """One piece of feedback the view offers to turn into a golden case."""

    source: str  # run:<id> or review:<id>: the button's value, never shown
    text: str  # mrkdwn, for the admin
    template: str
    added_by: str | None  # who made it a candidate already


def _params(tenant_id: int) -> dict[str, Any]:
    return {"tenant": tenant_id, "days": ITEMS_DAYS, "limit": ITEMS_MAX}


def items(conn: Conn, tenant_id: int) -> tuple[list[Item], str | None]:
    """The items of the view, newest first, and the tenant's Slack team id (for the CLI)."""
    params = _params(tenant_id)
    down = conn.execute(_THUMBS_DOWN, params).fetchall()
    reviews = conn.execute(_REVIEWS, params).fetchall()
    team = conn.execute(_TEAM, params).fetchone()
    return _items(down, reviews), team["team_id"] if team else None


async def items_async(pool: AsyncPool, tenant_id: int) -> tuple[list[Item], str | None]:
    params = _params(tenant_id)
    async with pool.connection() as conn:
        down = await (await conn.execute(_THUMBS_DOWN, params)).fetchall()
        reviews = await (await conn.execute(_REVIEWS, params)).fetchall()
        team = await (await conn.execute(_TEAM, params)).fetchone()
    return _items(down, reviews), team["team_id"] if team else None


def _items(down: Sequence[dict[str, Any]], reviews: Sequence[dict[str, Any]]) -> list[Item]:
    rated = [
        (
            row["at"],
            Item(
                source=f"run:{row['run_id']}",
                text=(
                    f"*👎 with a reason* on {_answer_link(row['payload'], row['reply_ts'])} · "
                    f"{_template_words(row['template'])}\n"
                    f"_What was wrong:_ “{_excerpt(row['reason'])}”"
                    + (
                        f" ({row['people']} people said what was wrong)"
                        if row["people"] > 1
                        else ""
                    )
                ),
                template=row["template"] or NO_TEMPLATE,
                added_by=row["added_by"],
            ),
        )
        for row in down
    ]
    reviewed = [(row["at"], _review_item(row)) for row in reviews]
    return [item for _, item in sorted(rated + reviewed, key=lambda pair: pair[0], reverse=True)]


def _review_item(row: dict[str, Any]) -> Item:
    summary = people_summary(row)
    if row["kind"] == "edit":
        who = f" by <@{row['edited_by']}>" if row["edited_by"] else ""
        text = f"*Edited before approval*{who} · {_template_words(row['template'])}\n{summary}"
    else:
        who = f" by <@{row['decided_by']}>" if row["decided_by"] else ""
        text = f"*Rejected*{who} · {_template_words(row['template'])}\n{summary}"
        if row["reason"]:
            text += f"\n_Why:_ “{_excerpt(row['reason'])}”"
    return Item(
        source=f"review:{row['review_id']}",
        text=text,
        template=row["template"] or NO_TEMPLATE,
        added_by=row["added_by"],
    )


def _template_words(template: str | None) -> str:
    if not template or template == NO_TEMPLATE:
        return "no agent template"
    return f"{template} template"


def _answer_link(payload: dict[str, Any] | None, reply_ts: str | None) -> str:
    """A link to the answer in its thread, never its question's text: the question may
    come from a channel the admin is not in, and Slack shows the linked message only to
    its members."""
    event = (payload or {}).get("event") or {}
    channel = str(event.get("channel") or "")
    if not channel or not reply_ts:
        return "a private answer" if channel else "an answer"
    thread = str(event.get("thread_ts") or event.get("ts") or reply_ts)
    return (
        f"<https://slack.com/archives/{channel}/p{reply_ts.replace('.', '')}"
        f"?thread_ts={thread}&cid={channel}|an answer>"
    )


def _excerpt(text: str | None) -> str:
    """Short, secrets and card numbers masked, Slack markup kept from breaking the line."""
    flat = " ".join(default_masker().mask(text or "").split())
    if len(flat) > EXCERPT_CHARS:
        flat = flat[: EXCERPT_CHARS - 1].rstrip() + "…"
    return mrkdwn_safe(flat)


def how_to_accept(template: str, team_id: str | None) -> str:
    """What an admin does next with a candidate: the CLI writes it out; a person finishes
    it and adds it to the template's golden set."""
    scope = f" --template {template}" if template != NO_TEMPLATE else ""
    tenant = team_id or "YOUR_TEAM_ID"
    golden_set = (
        f"`templates/golden/{template}.jsonl`"
        if template != NO_TEMPLATE
        else "the golden set of the template it belongs to"
    )
    return (
        f"To accept it: `chatops golden saved --tenant {tenant}{scope} > candidates.jsonl`, "
        f"finish the case (its `candidate` note says how) and add it to {golden_set}."
    )


def feedback_blocks(summary: str, found: list[Item], team_id: str | None) -> list[dict[str, Any]]:
    """The `/agent feedback` view: the summary, then each item with its button, or with
    who added it and how to accept it."""
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=summary)), DividerBlock()]
    if not found:
        blocks.append(
            _small_print(
                f"No 👎 with a reason, edits or rejections in the last {ITEMS_DAYS} days to "
                "make golden cases from."
            )
        )
        return [block.to_dict() for block in blocks]
    blocks.append(
        _small_print(
            "Latest feedback worth keeping as a regression check. "
            "*Make a golden case* turns it into a golden-set candidate "
            "(personal data masked) for a person to finish and accept."
        )
    )
    for item in found:
        make_case = ButtonElement(
            action_id=GOLDEN_BUTTON,
            value=item.source,
            text=PlainTextObject(text="Make a golden case"),
        )
        blocks.append(
            SectionBlock(
                block_id=f"golden:{item.source}",
                text=MarkdownTextObject(text=item.text),
                accessory=make_case if item.added_by is None else None,
            )
        )
        if item.added_by is not None:
            blocks.append(
                _small_print(
                    f":white_check_mark: Added to the golden-set candidates by "
                    f"<@{item.added_by}>. {how_to_accept(item.template, team_id)}"
                )
            )
    return [block.to_dict() for block in blocks]


def _small_print(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=text)])


@dataclass(frozen=True)
class Made:
    """What a click did: whether it added a candidate now (False: it was there already,
    or the feedback is gone), and for which template."""

    added: bool
    template: str | None


def make_golden_case(conn: Conn, *, tenant_id: int, source: str, user: str, mask: Mask) -> Made:
    """Keep the candidate for `source` (run:<id> or review:<id>) of the tenant, audited;
    a second click (or a retried job) finds it there and adds nothing."""
    kind, _, number = source.partition(":")
    if kind not in ("run", "review") or not number.isdigit():
        return Made(False, None)
    existing = conn.execute(
        "SELECT template FROM golden_candidates WHERE tenant_id = %s AND source = %s",
        (tenant_id, source),
    ).fetchone()
    if existing is not None:
        return Made(False, existing["template"])
    candidate = one_candidate(
        conn,
        tenant_id=tenant_id,
        run_id=int(number) if kind == "run" else None,
        review_id=int(number) if kind == "review" else None,
        mask=mask,
    )
    if candidate is None:
        return Made(False, None)
    note = candidate["candidate"]
    template = note.get("template") or NO_TEMPLATE
    with conn.transaction():
        row = conn.execute(
            """INSERT INTO golden_candidates
                 (tenant_id, source, template, origin, candidate, created_by)
               VALUES (%s, %s, %s, %s, %s, %s)
               ON CONFLICT (tenant_id, source) DO NOTHING RETURNING id""",
            (tenant_id, source, template, note["origin"], Jsonb(candidate), user),
        ).fetchone()
        if row is None:
            return Made(False, template)
        audit.append(
            conn,
            audit.Entry(
                tenant_id=tenant_id,
                actor=user,
                action="golden.candidate_added",
                subject=f"{ORIGIN_WORDS.get(note['origin'], note['origin'])} ({_template_words(template)})",
                details={"via": "/agent feedback", "source": source, "origin": note["origin"]},
            ),
        )
    log.info("golden.candidate_added", origin=note["origin"], template=template)
    return Made(True, template)


ORIGIN_WORDS = {
    "thumbs_down": "a 👎 answer",
    "thumbs_up": "a 👍 answer",
    "approval_edit": "an approver's edit",
    "approval_rejection": "a rejected action",
}


def saved_candidates(conn: Conn, tenant_id: int, template: str | None) -> list[dict[str, Any]]:
    """The candidates admins made, oldest first (for `chatops golden saved`)."""
    rows = conn.execute(
        """SELECT candidate FROM golden_candidates
           WHERE tenant_id = %s AND (%s::text IS NULL OR template = %s)
           ORDER BY created_at, id""",
        (tenant_id, template, template),
    ).fetchall()
    return [row["candidate"] for row in rows]


def handle_click(
    conn: Conn,
    request: dict[str, Any],
    *,
    mask: Mask,
    summary: Callable[[Conn, int], str],
    post: Callable[[str, dict[str, Any]], None] | None = None,
) -> Made:
    """The worker's part of a click: make the candidate, then show the view again, in
    place, through the click's response_url."""
    payload = request["payload"]
    tenant_id = request["tenant_id"]
    made = make_golden_case(
        conn,
        tenant_id=tenant_id,
        source=str(payload["actions"][0]["value"]),
        user=str((payload.get("user") or {}).get("id") or ""),
        mask=mask,
    )
    url = payload.get("response_url")
    if url:
        found, team = items(conn, tenant_id)
        text = summary(conn, tenant_id)
        body = {
            "replace_original": True,
            "text": text,
            "blocks": feedback_blocks(text, found, team),
        }
        (post or _post)(str(url), body)
    return made


def _post(url: str, body: dict[str, Any]) -> None:
    response = WebhookClient(url, timeout=10).send_dict(body)
    if response.status_code != 200:
        log.warning("golden.view_not_updated", status=response.status_code, body=response.body)
