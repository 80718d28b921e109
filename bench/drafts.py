"""Mention-to-draft latency: a person @-mentions the bot, how long until the answer shows?

Mentions go through the Slack emulator one at a time, as a person's would, and each is
timed on one wall clock from the post to the Web API call that turned the placeholder into
the answer. The pieces in between come from the emulator's API log and from the rows the
listener and the worker wrote, so a slow total can be pinned on one stage.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from bot.agent.run_request import THINKING_TEXT
from sandbox.slack_emulator import SlackEmulator
from sandbox.slack_workspace import Message
from tests.support.conversation import bot_replies, mention

POLL_INTERVAL = 0.005  # s; only paces the next mention, the timing comes from the API log
ANSWER_TIMEOUT = 30.0  # s


@dataclass(frozen=True)
class Posted:
    event_id: str
    thread_ts: str
    posted_at: float  # time.time() just before the post
    acked_at: float  # time.time() once the listener answered the delivery


@dataclass(frozen=True)
class DraftTiming:
    """Seconds per stage of one mention; the stages add up to `total`."""

    ack: float  # post -> the listener's 200 (emulator delivery, insert, enqueue)
    pickup: float  # ack -> the worker's run row (queue wait and job start)
    to_placeholder: float  # run row -> the ':hourglass' placeholder posted
    own_after: float  # placeholder -> answer posted, less the LLM calls
    llm: float  # the LLM calls (the emulator answers at once)
    total: float

    @property
    def without_llm(self) -> float:
        return self.total - self.llm


def measure_drafts(
    slack: SlackEmulator, database_url: str, count: int, gap: float = 0.0
) -> list[DraftTiming]:
    """`count` mentions, each posted `gap` seconds after the previous one was answered."""
    posted = []
    for index in range(count):
        if index and gap:
            # An idle pause, as between real people's questions; how long the worker has
            # been idle decides how soon it notices the next job.
            time.sleep(gap)
        posted.append(_post_and_wait(slack))
    return _timings(slack, database_url, posted)


def warm_up(slack: SlackEmulator, count: int) -> None:
    for _ in range(count):
        _post_and_wait(slack)


def _post_and_wait(slack: SlackEmulator) -> Posted:
    question = f"What is our refund window? [bench {uuid.uuid4().hex[:8]}]"
    posted_at = time.time()
    post = mention(slack, question)
    acked_at = time.time()
    delivery = post.deliveries[0]
    if delivery.status != 200:
        raise RuntimeError(f"the listener answered the mention with {delivery.status}")
    _wait_for_answer(slack, post.message.ts)
    return Posted(delivery.event_id, post.message.ts, posted_at, acked_at)


def _wait_for_answer(slack: SlackEmulator, thread_ts: str) -> Message:
    deadline = time.monotonic() + ANSWER_TIMEOUT
    while time.monotonic() < deadline:
        done = [m for m in bot_replies(slack, thread_ts) if m.text != THINKING_TEXT]
        if done:
            return done[-1]
        time.sleep(POLL_INTERVAL)
    raise RuntimeError(f"no answer in thread {thread_ts} within {ANSWER_TIMEOUT:.0f}s")


def _timings(slack: SlackEmulator, database_url: str, posted: list[Posted]) -> list[DraftTiming]:
    placeholders = {
        c.params.get("thread_ts"): (c.timestamp, c.response.get("ts"))
        for c in slack.calls("chat.postMessage")
        if c.ok and c.params.get("text") == THINKING_TEXT
    }
    updates: dict[str, float] = {}
    for call in slack.calls("chat.update"):
        if call.ok and call.params.get("text") != THINKING_TEXT:
            updates[str(call.params.get("ts"))] = call.timestamp
    rows = _run_rows(database_url, [p.event_id for p in posted])
    timings = []
    for post in posted:
        placeholder_at, reply_ts = placeholders[post.thread_ts]
        answered_at = updates[str(reply_ts)]
        row = rows[post.event_id]
        llm = row["llm_ms"] / 1000
        timings.append(
            DraftTiming(
                ack=post.acked_at - post.posted_at,
                pickup=row["started_at"] - post.acked_at,
                to_placeholder=placeholder_at - row["started_at"],
                own_after=answered_at - placeholder_at - llm,
                llm=llm,
                total=answered_at - post.posted_at,
            )
        )
    return timings


def _run_rows(database_url: str, event_ids: list[str]) -> dict[str, dict[str, Any]]:
    # Read once, after the last mention, so the measurement itself puts no load on Postgres.
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        rows = conn.execute(
            """SELECT q.external_id,
                      extract(epoch FROM r.started_at)::float8 AS started_at,
                      coalesce(sum(u.latency_ms), 0)::float8 AS llm_ms
               FROM inbound_requests q
               JOIN agent_runs r ON r.request_id = q.id
               LEFT JOIN llm_usage u ON u.run_id = r.id
               WHERE q.external_id = ANY(%s)
               GROUP BY q.external_id, r.started_at""",
            (event_ids,),
        ).fetchall()
    return {row["external_id"]: row for row in rows}
