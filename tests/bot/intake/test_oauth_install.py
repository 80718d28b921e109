"""Multi-workspace mode: a workspace is served only once it has installed the app via OAuth."""

from __future__ import annotations

import re
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from core.migrate import apply_migrations
from sandbox.slack_emulator import SlackEmulator
from tests.conftest import create_database, drop_database
from tests.support.conversation import mention
from tests.support.processes import ChatopsProcess
from tests.support.stack import free_port, product_env


@pytest.fixture
def oauth_listener(
    postgres_server_url: str,
    queue_namespace: str,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, SlackEmulator, str]]:
    database_url = create_database(postgres_server_url, prefix="chatops_oauth")
    apply_migrations(database_url)
    slack = SlackEmulator()
    slack.start()
    env = product_env(
        database_url=database_url,
        redis_url=redis_url,
        namespace=f"{queue_namespace}-oauth",
        slack=slack,
        llm_primary=None,
        llm_fallback=None,
    )
    env["SLACK_BOT_TOKEN"] = ""
    env["SLACK_CLIENT_ID"] = slack.workspace.app.client_id
    env["SLACK_CLIENT_SECRET"] = slack.workspace.app.client_secret
    port = free_port()
    serve = ChatopsProcess(
        ["serve", "--port", str(port)], env, tmp_path_factory.mktemp("oauth") / "serve.log"
    )
    serve.start(ready_url=f"http://127.0.0.1:{port}/healthz")
    base = f"http://127.0.0.1:{port}"
    slack.events_url = f"{base}/slack/events"
    try:
        yield base, slack, database_url
    finally:
        serve.stop()
        slack.stop()
        drop_database(postgres_server_url, database_url)


def stored_requests(database_url: str) -> list[dict[str, Any]]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return conn.execute("SELECT kind, tenant_id FROM inbound_requests").fetchall()


def test_install_through_oauth_then_events_are_served(
    oauth_listener: tuple[str, SlackEmulator, str],
) -> None:
    """Before installing, the workspace's events are refused; after the OAuth dance, accepted."""
    base, slack, database_url = oauth_listener
    mention(slack, "anyone home?")
    assert stored_requests(database_url) == []

    # The admin opens the install page; Bolt sets a state cookie and links to Slack.
    with urllib.request.urlopen(f"{base}/slack/install", timeout=10) as page:
        html = page.read().decode()
        cookie = page.headers["Set-Cookie"].split(";")[0]
    state = re.search(r"state=([\w\-]+)", html)
    assert state is not None, html
    # Slack sends the admin back with a one-time code after they approve the app. (The
    # cookie is marked Secure, so it is passed by hand over this plain-HTTP test.)
    code = slack.workspace.issue_oauth_code()
    query = urllib.parse.urlencode({"code": code, "state": state.group(1)})
    callback = urllib.request.Request(
        f"{base}/slack/oauth_redirect?{query}", headers={"Cookie": cookie}
    )
    with urllib.request.urlopen(callback, timeout=10) as done:
        assert done.status == 200

    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        installed = conn.execute(
            "SELECT t.slack_team_id, i.bot_user_id FROM tenants t"
            " JOIN slack_installations i ON i.tenant_id = t.id"
        ).fetchall()
        audit = conn.execute("SELECT action FROM audit_log").fetchall()
    assert installed == [
        {"slack_team_id": slack.workspace.team.id, "bot_user_id": slack.bot_user_id}
    ]
    assert {"action": "slack.installed"} in audit
    mention(slack, "now?")
    assert [r["kind"] for r in stored_requests(database_url)] == ["app_mention"]


def test_forged_oauth_state_is_refused(oauth_listener: tuple[str, SlackEmulator, str]) -> None:
    """A redirect carrying a state we never issued installs nothing."""
    base, slack, database_url = oauth_listener
    code = slack.workspace.issue_oauth_code()
    query = urllib.parse.urlencode({"code": code, "state": "forged-state"})
    try:
        urllib.request.urlopen(f"{base}/slack/oauth_redirect?{query}", timeout=10)
    except urllib.error.HTTPError as refused:
        assert refused.code >= 400
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM slack_installations").fetchone() == (0,)
