"""The Slack app manifest asks for exactly what the code uses."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.intake.slack_app import BOT_SCOPES, SUBSCRIBED_EVENTS

MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "slack-app-manifest.yml"


def test_manifest_subscribes_to_every_event_the_app_listens_to() -> None:
    """Each event the Bolt app handles is subscribed (message via its channel variants)."""
    manifest = yaml.safe_load(MANIFEST.read_text())
    subscribed = {
        e.split(".")[0] for e in manifest["settings"]["event_subscriptions"]["bot_events"]
    }
    assert set(SUBSCRIBED_EVENTS) <= subscribed


def test_manifest_scopes_match_the_install_flow() -> None:
    """The OAuth install asks for the same bot scopes the manifest declares."""
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(BOT_SCOPES)


def test_slash_command_and_interactivity_point_at_the_one_endpoint() -> None:
    """/agent, interactivity and events all go to /slack/events, where Bolt serves them."""
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert [c["command"] for c in manifest["features"]["slash_commands"]] == ["/agent"]
    urls = {
        manifest["features"]["slash_commands"][0]["url"],
        manifest["settings"]["interactivity"]["request_url"],
        manifest["settings"]["event_subscriptions"]["request_url"],
    }
    assert urls == {"https://YOUR_HOST/slack/events"}


def test_manifest_opens_direct_messages_and_the_assistant_panel() -> None:
    """DMs and the assistant side panel are switched on, with their events and scopes."""
    manifest = yaml.safe_load(MANIFEST.read_text())
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    assert {"message.im", "assistant_thread_started", "assistant_thread_context_changed"} <= set(
        events
    )
    assert {"im:history", "assistant:write"} <= set(manifest["oauth_config"]["scopes"]["bot"])
    assert manifest["features"]["app_home"]["messages_tab_enabled"] is True
    assert manifest["features"]["assistant_view"]["assistant_description"]
