"""Mention-to-draft latency: a person @-mentions the bot, how long until the answer shows?

Mentions go through the Slack emulator one at a time, as a person's would, and each is
timed on one wall clock from the post to the Web API call that made the reply final (the
placeholder edited into the answer, or the streamed message that replaced it finished). The pieces in between come from the emulator's API log and from the rows the
listener and the worker wrote, so a slow total can be pinned on one stage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from bot.agent.run_request import THINKING_TEXT
from connectors.slack.streaming import PREVIEW_SUFFIX
from sandbox.slack_emulator import SlackEmulator
from testbed.conversation import mention
from testbed.markers import new_marker

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
    question = f"What is our refund window? [bench {new_marker(8)}]"
    posted_at = time.time()
    post = mention(slack, question)
    acked_at = time.time()
    delivery = post.deliveries[0]
    if delivery.status != 200:
        raise RuntimeError(f"the listener answered the mention with {delivery.status}")
    _wait_for_answer(slack, post.message.ts)
    return Posted(delivery.event_id, post.message.ts, posted_at, acked_at)


def _wait_for_answer(slack: SlackEmulator, thread_ts: str) -> None:
    deadline = time.monotonic() + ANSWER_TIMEOUT
    while time.monotonic() < deadline:
        if thread_ts in _replies(slack):
            return
        time.sleep(POLL_INTERVAL)
    raise RuntimeError(f"no answer in thread {thread_ts} within {ANSWER_TIMEOUT:.0f}s")


@dataclass(frozen=True)
class Reply:
    placeholder_at: float  # the "working on it" message posted
    answered_at: float  # the final write: the answer whole, with its buttons


def _replies(slack: SlackEmulator) -> dict[str, Reply]:
    """The finished replies by thread, from the Web API log.

    A reply starts as the "working on it" placeholder. Either it is edited in place
    (chat.update; previews end in an ellipsis, the answer does not), or a streamed
    message replaces it (chat.startStream, the placeholder deleted) and the stream's
    message is made final by chat.update once it stops.
    """
    placeholders: dict[str, tuple[float, str]] = {}  # thread -> (posted at, its ts)
    streams: dict[str, str] = {}  # stream message ts -> thread
    for call in slack.calls():
        if not call.ok:
            continue
        if call.method == "chat.postMessage" and call.params.get("text") == THINKING_TEXT:
            thread = str(call.params.get("thread_ts"))
            placeholders[thread] = (call.timestamp, str(call.response.get("ts")))
        elif call.method == "chat.startStream":
            streams[str(call.response.get("ts"))] = str(call.params.get("thread_ts"))
    by_placeholder = {ts: thread for thread, (_, ts) in placeholders.items()}
    streamed = set(streams.values())
    replies = {}
    for call in slack.calls("chat.update"):
        text = str(call.params.get("text"))
        if not call.ok or text == THINKING_TEXT:
            continue
        ts = str(call.params.get("ts"))
        if ts in streams:
            thread = streams[ts]
        elif ts in by_placeholder and not text.endswith(PREVIEW_SUFFIX):
            thread = by_placeholder[ts]
            if thread in streamed:
                continue  # a preview written before streaming took over
        else:
            continue
        replies[thread] = Reply(placeholders[thread][0], call.timestamp)
    return replies


def _timings(slack: SlackEmulator, database_url: str, posted: list[Posted]) -> list[DraftTiming]:
    replies = _replies(slack)
    rows = _run_rows(database_url, [p.event_id for p in posted])
    timings = []
    for post in posted:
        reply = replies[post.thread_ts]
        row = rows[post.event_id]
        llm = row["llm_ms"] / 1000
        timings.append(
            DraftTiming(
                ack=post.acked_at - post.posted_at,
                pickup=row["started_at"] - post.acked_at,
                to_placeholder=reply.placeholder_at - row["started_at"],
                own_after=reply.answered_at - reply.placeholder_at - llm,
                llm=llm,
                total=reply.answered_at - post.posted_at,
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
