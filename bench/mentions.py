"""Load plans of signed app_mention deliveries, built by the orchestrating process.

Kept apart from bench/loadgen.py so the load generator's child process does not import
the product (seconds of CPU) just to send what it is given.
"""

from __future__ import annotations

import json

from bench.loadgen import LoadPlan
from sandbox.slack_emulator import SlackEmulator
from testbed.conversation import GENERAL, REQUESTER


def mention_plan(slack: SlackEmulator, url: str, rate: float, count: int, warmup: int) -> LoadPlan:
    """`count` signed app_mention deliveries to `url` at `rate`, after `warmup` unmeasured."""
    return LoadPlan(
        url=url,
        signing_secret=slack.signing_secret,
        bodies=tuple(_mention_body(slack, i) for i in range(count)),
        warmup_bodies=tuple(_mention_body(slack, -i - 1) for i in range(warmup)),
        rate=rate,
    )


def _mention_body(slack: SlackEmulator, index: int) -> str:
    """An app_mention event_callback as Slack sends it, with a fresh event_id and ts."""
    ts = slack.workspace.next_ts()
    event = {
        "type": "app_mention",
        "user": REQUESTER,
        "text": f"<@{slack.bot_user_id}> load test mention {index}",
        "ts": ts,
        "team": slack.workspace.team.id,
        "channel": GENERAL,
        "event_ts": ts,
    }
    return json.dumps(slack.dispatcher.builder.envelope(event))
