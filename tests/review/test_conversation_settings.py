"""A new thread's settings from the channel's, the workspace's template and Slack Connect."""

from __future__ import annotations

from pathlib import Path

from core.agent_template import load_templates
from review.conversation_settings import (
    PUBLIC_COLLECTION,
    ChannelSettings,
    EffectiveSettings,
    effective,
)

TEMPLATES = load_templates(Path(__file__).resolve().parents[2] / "templates")


def test_nothing_set_means_todays_behaviour() -> None:
    """No template, answers on mention, public, all knowledge."""
    settings = effective(ChannelSettings(), None, False, TEMPLATES)
    assert settings == EffectiveSettings(None, None, None, "mention", "public", None, False)


def test_channel_template_wins_over_the_workspaces_and_brings_its_collections() -> None:
    """The channel's own template beats the workspace default; its collections apply."""
    settings = effective(ChannelSettings(template="sales"), "support", False, TEMPLATES)
    assert settings.template == "sales" and settings.collections == ("sales",)
    assert settings.template_version == TEMPLATES["sales"].version
    assert effective(ChannelSettings(), "support", False, TEMPLATES).template == "support"


def test_slack_connect_defaults_to_private_and_public_knowledge() -> None:
    """Shared channels answer privately from the public collection unless an admin chose."""
    shared = effective(ChannelSettings(template="support"), None, True, TEMPLATES)
    assert shared.visibility == "private" and shared.collections == (PUBLIC_COLLECTION,)
    chosen = effective(
        ChannelSettings(visibility="public", collections=("support",)), None, True, TEMPLATES
    )
    assert chosen.visibility == "public" and chosen.collections == ("support",)


def test_a_removed_template_runs_without_one() -> None:
    """A template no longer deployed is not an error: the thread runs with no template."""
    assert effective(ChannelSettings(template="retired"), None, False, TEMPLATES).template is None


def test_the_pin_round_trips() -> None:
    """What a thread pins is what its later turns read back."""
    settings = effective(ChannelSettings(template="support"), None, True, TEMPLATES)
    assert EffectiveSettings.from_pin(settings.to_pin()) == settings
