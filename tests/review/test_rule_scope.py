"""What an "always allow" rule made from a card would cover, and when none may be made;
how escalation times read. Pure functions: no stack needed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from guardrails.policy import TenantPolicy, ToolPolicy
from review.console.rules import _span
from review.escalation import duration, mentions
from review.rules import Scope, scope_of


def action(tool: str, **fields: Any) -> dict[str, Any]:
    return {
        "tool": tool,
        "requested_by": "U0ANN",
        "flags": [],
        "idempotency_key": "run:1:call:0",
        "recipient_domains": None,
        **fields,
    }


def policy(**tools: Any) -> TenantPolicy:
    return TenantPolicy(tools=ToolPolicy(**tools))


def test_a_rule_covers_the_tool_for_the_requester() -> None:
    """For a tool that is not email, the rule is this tool for this requester's requests."""
    assert scope_of(policy(), action("hubspot_update_deal")) == Scope(
        "hubspot_update_deal", requester="U0ANN"
    )


def test_an_email_rule_covers_one_recipient_domain() -> None:
    """For email, the rule is this tool to the one domain its recipients are at; email to
    several domains, or to recipients no domain was read for, gets no rule."""
    one = action("send_email", recipient_domains=["customer.example"])
    assert scope_of(policy(), one) == Scope("send_email", recipient_domain="customer.example")
    two = action("send_email", recipient_domains=["a.example", "b.example"])
    assert scope_of(policy(), two) is None
    assert scope_of(policy(), action("reply_email")) is None


def test_always_review_tools_and_domains_get_no_rule() -> None:
    """The policy's always-review tools (patterns too) and recipient domains (and their
    subdomains) are never covered by a rule."""
    assert scope_of(policy(always_review=["hubspot_*"]), action("hubspot_update_deal")) is None
    mail = action("send_email", recipient_domains=["eu.bank.example"])
    assert scope_of(policy(always_review_domains=["bank.example"]), mail) is None
    assert scope_of(policy(always_review_domains=["other.example"]), mail) is not None


def test_flagged_actions_and_held_answers_get_no_rule() -> None:
    """An action the guardrails flagged, or an answer they held back, needs a person each
    time."""
    assert scope_of(policy(), action("post_to_channel", flags=["possible injection"])) is None
    held = action("reply_in_thread", idempotency_key="run:7:held-answer")
    assert scope_of(policy(), held) is None


def test_escalation_times_read_as_people_say_them() -> None:
    """`after 2h`, `after 90m`, `after 1 day` are understood; the replies say them in words."""
    assert _span("2h") == timedelta(hours=2)
    assert _span("90 minutes") == timedelta(minutes=90)
    assert _span("1 day") == timedelta(days=1)
    assert _span("soon") is None and _span("0h") is None
    assert duration(timedelta(hours=2)) == "2 hours"
    assert duration(timedelta(minutes=61)) == "1 hour 1 minute"
    assert duration(timedelta(days=1, hours=3)) == "1 day 3 hours"
    assert mentions(["<@U1>", "<!subteam^S1>", "<@U2>"]) == "<@U1>, <!subteam^S1> and <@U2>"
