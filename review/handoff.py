""" "Ask a human": hand a thread to the person or user group an admin named with
`/agent handoff`, with a short summary, once per thread.

The summary is built from the messages the app stored for the conversation (the first
question, how many answers, the latest one, any 👎 reasons), not by a model: it is
instant, costs nothing, cannot invent anything, and works when no model is configured.
It is posted in the same thread, where all of it is already visible, so it shows nobody
anything new.

After a handoff the bot stops answering follow-ups in that thread on its own (a person
has taken over, and the bot talking over them would confuse the asker); an explicit
@mention still gets an answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from slack_sdk.web.async_client import AsyncWebClient

from core.db import AsyncPool
from core.store import audit
from review import people as people_lists

# `/agent handoff` takes a person (<@U…>, as Slack sends a mention) or a user group
# (<!subteam^S…> or <!subteam^S…|@name>); stored in the form Slack renders as a mention.
TARGET = re.compile(
    r"^<@(?P<user>[UW][A-Z0-9]+)(\|[^>]*)?>$|^<!subteam\^(?P<group>S[A-Z0-9]+)(\|[^>]*)?>$"
)
EXCERPT_CHARS = 200
MENTION = re.compile(r"<@[A-Z0-9]+>\s*")


def parse_target(text: str) -> str | None:
    """The mention to store for `/agent handoff ARG`, or None when ARG is neither."""
    match = TARGET.match(text.strip())
    if match is None:
        return None
    if match.group("user"):
        return f"<@{match.group('user')}>"
    return f"<!subteam^{match.group('group')}>"


@dataclass(frozen=True)
class Handoff:
    posted: bool  # False: there is nobody to hand to, or it was handed over before
    message: str  # for the person who clicked, privately


async def hand_over(
    pool: AsyncPool, client: AsyncWebClient, *, tenant_id: int, run_id: int, user: str
) -> Handoff:
    """Record the handoff of the thread of the tenant's run `run_id`, then tell the
    configured target in the thread. A thread is handed over once; a handoff recorded
    but never announced (Slack failed) is announced by the next click."""
    async with pool.connection() as conn:
        run = await (
            await conn.execute(
                """SELECT r.conversation_id, c.slack_channel_id, c.slack_thread_ts,
                          s.handoff_target
                   FROM agent_runs r JOIN conversations c ON c.id = r.conversation_id
                   LEFT JOIN tenant_settings s ON s.tenant_id = r.tenant_id
                   WHERE r.id = %s AND r.tenant_id = %s AND c.channel_kind = 'slack'""",
                (run_id, tenant_id),
            )
        ).fetchone()
        if run is None:
            return Handoff(False, "I can't find that conversation any more.")
        target = run["handoff_target"]
        if not target:
            return Handoff(False, await _nobody_set(conn, tenant_id))
        await conn.execute(
            """INSERT INTO thread_handoffs (tenant_id, conversation_id, run_id, requested_by, target)
               VALUES (%s, %s, %s, %s, %s) ON CONFLICT (conversation_id) DO NOTHING""",
            (tenant_id, run["conversation_id"], run_id, user, target),
        )
        handoff = await (
            await conn.execute(
                "SELECT * FROM thread_handoffs WHERE conversation_id = %s AND tenant_id = %s",
                (run["conversation_id"], tenant_id),
            )
        ).fetchone()
        assert handoff is not None
        if handoff["notice_ts"]:
            return Handoff(False, f"{handoff['target']} was already asked to take over here.")
        summary = await _summary(conn, tenant_id, run["conversation_id"])
    text = (
        f":raising_hand: {handoff['target']}: <@{handoff['requested_by']}> asked for a person "
        "to take over this thread. I won't answer follow-ups here unless someone mentions me."
        f"\n*Summary*\n{summary}"
    )
    response = await client.chat_postMessage(
        channel=run["slack_channel_id"], thread_ts=run["slack_thread_ts"], text=text
    )
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "UPDATE thread_handoffs SET notice_ts = %s WHERE id = %s AND tenant_id = %s",
            (response["ts"], handoff["id"], tenant_id),
        )
        await audit.append_async(
            conn,
            audit.Entry(
                tenant_id=tenant_id,
                actor=user,
                action="thread.handed_off",
                subject=f"{run['slack_channel_id']}:{run['slack_thread_ts']}",
                details={"target": handoff["target"], "run_id": run_id},
            ),
        )
    return Handoff(True, f"I asked {handoff['target']} to take over this thread.")


async def _nobody_set(conn: AsyncConnection[dict[str, Any]], tenant_id: int) -> str:
    """What to tell someone who asked for a person when no hand-off target is set: that
    nobody was asked, and who can set one (the app's admins by name, else who installed
    it; any workspace admin can too)."""
    admins = await people_lists.admins_async(conn, tenant_id, limit=3)
    people = [f"<@{admin}>" for admin in admins]
    if not people:
        installer = await (
            await conn.execute(
                """SELECT installer_user_id FROM slack_installations
                   WHERE tenant_id = %s AND installer_user_id IS NOT NULL LIMIT 1""",
                (tenant_id,),
            )
        ).fetchone()
        if installer is not None:
            people = [f"<@{installer['installer_user_id']}>"]
    who = (
        f"{', '.join(people)} (this app's admins) or any workspace admin"
        if people
        else "A workspace admin"
    )
    return (
        "Nobody is set up to take over conversations here yet, so I couldn't hand this "
        f"thread to a person. {who} can choose who with `/agent handoff @person` "
        "(or `@group`); until then, ask your team directly."
    )


async def is_handed_off(pool: AsyncPool, tenant_id: int, channel: str, thread_ts: str) -> bool:
    """Whether a person took this Slack thread over, so the bot leaves follow-ups alone."""
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                """SELECT 1 FROM thread_handoffs h JOIN conversations c ON c.id = h.conversation_id
                   WHERE c.tenant_id = %s AND c.channel_kind = 'slack' AND c.external_key = %s""",
                (tenant_id, f"{channel}:{thread_ts}"),
            )
        ).fetchone()
    return row is not None


async def _summary(
    conn: AsyncConnection[dict[str, Any]], tenant_id: int, conversation_id: int
) -> str:
    messages = await (
        await conn.execute(
            """SELECT role, author, text FROM messages
               WHERE tenant_id = %s AND conversation_id = %s ORDER BY created_at, id""",
            (tenant_id, conversation_id),
        )
    ).fetchall()
    reasons = await (
        await conn.execute(
            """SELECT f.slack_user_id, f.reason FROM answer_ratings f
               JOIN agent_runs r ON r.id = f.run_id
               WHERE f.tenant_id = %s AND r.conversation_id = %s AND f.rating = 'down'
               ORDER BY f.updated_at""",
            (tenant_id, conversation_id),
        )
    ).fetchall()
    questions = [m for m in messages if m["role"] == "user"]
    answers = [m for m in messages if m["role"] == "assistant"]
    lines = []
    if questions:
        first = questions[0]
        lines.append(f"• <@{first['author']}> asked: “{_excerpt(first['text'])}”")
        if len(questions) > 1:
            lines.append(f"• {len(questions) - 1} follow-up question(s) after that")
    if answers:
        lines.append(f"• My latest answer: “{_excerpt(answers[-1]['text'])}”")
    for row in reasons:
        why = f": “{_excerpt(row['reason'])}”" if row["reason"] else ""
        lines.append(f"• <@{row['slack_user_id']}> marked an answer 👎{why}")
    return "\n".join(lines) or "• (no stored messages in this thread)"


def _excerpt(text: str) -> str:
    first = MENTION.sub("", text).strip().split("\n\n")[0].replace("\n", " ")
    return first if len(first) <= EXCERPT_CHARS else first[: EXCERPT_CHARS - 1] + "…"
