"""Loaders for sources that are not plain files: Slack channel history through the
Web API (the Slack emulator), and stored email threads."""

from __future__ import annotations

import time
from pathlib import Path

from slack_sdk import WebClient

from core.db import Pool
from rag.ingest import Ingestor
from rag.loaders.files import load_file
from rag.loaders.slack import load_channel
from rag.retriever import HybridRetriever
from rag.sources import SlackAccess, ingest_unit
from sandbox.slack_emulator import SlackEmulator
from sandbox.slack_workspace import Channel
from testbed.markers import new_marker

MBOX = """From dana@example.com Mon May  6 09:00:00 2024
From: Dana Ops <dana@example.com>
Subject: Database failover drill
Message-ID: <drill-1@example.com>
Date: Mon, 6 May 2024 09:00:00 +0000

The failover drill is on Thursday at 10:00 UTC.

From lee@example.com Mon May  6 10:00:00 2024
From: Lee Dev <lee@example.com>
Subject: Re: Database failover drill
Message-ID: <drill-2@example.com>
In-Reply-To: <drill-1@example.com>
References: <drill-1@example.com>
Date: Mon, 6 May 2024 10:00:00 +0000

Will the reporting replica stay writable?

On Mon, 6 May 2024, Dana Ops wrote:
> The failover drill is on Thursday at 10:00 UTC.

From sam@example.com Tue May  7 08:00:00 2024
From: Sam Sales <sam@example.com>
Subject: Pricing sheet
Message-ID: <pricing-1@example.com>
Date: Tue, 7 May 2024 08:00:00 +0000

The new pricing sheet is in the shared drive.
"""


def test_a_mailbox_becomes_one_document_per_thread_without_quoted_text(tmp_path: Path) -> None:
    """Replies join their thread's document, quoted earlier messages are left out, and
    senders appear by name."""
    path = tmp_path / "ops.mbox"
    path.write_text(MBOX)

    documents = {d.title: d for d in load_file(path)}

    assert set(documents) == {"Database failover drill", "Pricing sheet"}
    drill = documents["Database failover drill"]
    assert [b.text for b in drill.blocks] == [
        "The failover drill is on Thursday at 10:00 UTC.",
        "Will the reporting replica stay writable?",
    ]
    assert drill.blocks[1].heading_path[0].startswith("Lee Dev,")
    assert "@" not in drill.blocks[1].heading_path[0]


def test_slack_history_with_threads_is_ingested_and_searchable(
    slack: SlackEmulator, ingestor: Ingestor, retriever: HybridRetriever, tenant: int
) -> None:
    """A channel's messages and their thread replies, read through conversations.history
    and conversations.replies, become searchable, linked to Slack, without bot posts."""
    workspace = slack.workspace
    # A channel of its own: what other tests post in the session's channels is not
    # this test's history.
    marker = new_marker(8)
    channel = workspace.add_channel(
        Channel(
            "C0K" + marker.upper(),
            f"ops-{marker}",
            int(time.time()),
            "U0ADMIN",
            {"U0ADMIN", "U0REQUESTER", workspace.app.bot_user_id},
        )
    ).id
    root = workspace.post_message(
        channel, user="U0REQUESTER", text="How do we rotate the staging database password?"
    )
    workspace.post_message(
        channel,
        user="U0ADMIN",
        text="Run the vault-rotate job in Jenkins, then restart the API pods.",
        thread_ts=root.ts,
    )
    workspace.post_message(
        channel, user=workspace.app.bot_user_id, text="Bot chatter about vault-rotate."
    )
    client = WebClient(token=slack.bot_token, base_url=slack.api_url)
    target = ingestor.collection(tenant, "slack")

    stats = ingest_unit(
        ingestor,
        tenant,
        target,
        f"slack:{channel}",
        lambda _tenant: SlackAccess(client, workspace.team.id),
    )

    assert stats.failures == [] and stats.added >= 1
    (top, *_) = retriever.search(tenant, ["how to rotate the staging db password"], limit=3)
    assert "vault-rotate job in Jenkins" in top.text
    assert "Bot chatter" not in top.text
    assert top.title.startswith(f"#ops-{marker} on ")
    assert top.url is not None and f"archives/{channel}/p" in top.url
    documents = load_channel(client, workspace.team.id, channel)
    lines = [b.text for d in documents for b in d.blocks]
    assert lines.index("<@U0REQUESTER>: How do we rotate the staging database password?") < (
        lines.index("↳ <@U0ADMIN>: Run the vault-rotate job in Jenkins, then restart the API pods.")
    )


def test_a_slack_channel_the_bot_cannot_read_is_reported_and_skipped(
    slack: SlackEmulator, ingestor: Ingestor, pool: Pool, tenant: int
) -> None:
    """An unknown channel is a named failure, not a crash."""
    client = WebClient(token=slack.bot_token, base_url=slack.api_url)
    target = ingestor.collection(tenant, "slack")

    stats = ingest_unit(
        ingestor,
        tenant,
        target,
        "slack:C0NOSUCH",
        lambda _tenant: SlackAccess(client, slack.workspace.team.id),
    )

    assert stats.failures == [("slack:C0NOSUCH", "Slack refused C0NOSUCH: channel_not_found")]
