"""Tool policy: allow and deny lists per workspace and channel, and e-mail rules, with
refusals worded for the person who asked."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from guardrails.facade import Guardrails
from guardrails.policy import EmailRules, TenantPolicy, ToolPolicy, ToolRules
from guardrails.tool_policy import check_tool_call

POLICY = ToolPolicy(
    allow=["gmail.*", "crm.lookup", "slack.post"],
    deny=["gmail.delete_*"],
    channels={"C-PUBLIC": ToolRules(deny=["gmail.*"])},
    email=EmailRules(
        company_domains=["acme.com"],
        allowed_external_domains=["customer.io"],
        max_recipients=3,
        attachments_outside_company=False,
    ),
)


@pytest.mark.parametrize(
    ("tool", "arguments", "channel", "reason"),
    [
        (
            "gmail.delete_thread",
            {},
            "C-OPS",
            "I'm not allowed to use gmail.delete_thread in this workspace.",
        ),
        ("shell.run", {}, "C-OPS", "shell.run isn't one of the tools I may use in this workspace."),
        (
            "gmail.send",
            {"to": "ann@acme.com"},
            "C-PUBLIC",
            "I'm not allowed to use gmail.send in this channel.",
        ),
        (
            "gmail.send",
            {"to": ["ann@acme.com", "bo@customer.io"], "cc": "x@rival.net"},
            "C-OPS",
            "I may not email rival.net: outside the company, this workspace only allows customer.io.",
        ),
        (
            "gmail.send",
            {"to": "a@acme.com, b@acme.com; c@acme.com", "bcc": ["d@acme.com"]},
            "C-OPS",
            "That message would go to 4 recipients; I may send to at most 3 at once.",
        ),
        (
            "gmail.send",
            {"to": ["bo@customer.io"], "attachments": [{"filename": "prices.xlsx"}]},
            "C-OPS",
            "I may not send attachments outside the company; "
            "remove the attachment or send it to colleagues only.",
        ),
        (
            "gmail.send",
            {"to": ["<EMAIL_1>"]},
            "C-OPS",
            "I couldn't check the recipient '<EMAIL_1>': it isn't an email address.",
        ),
    ],
)
def test_refusals_name_the_rule_in_plain_words(
    tool: str, arguments: dict[str, Any], channel: str, reason: str
) -> None:
    """Each rule refuses what it should, with a sentence a person understands."""
    decision = check_tool_call(POLICY, tool, arguments, channel)
    assert not decision.allowed
    assert decision.reason_for_people == reason


def test_calls_within_the_rules_are_allowed() -> None:
    """Internal mail with attachments, allowed external domains, and permitted tools pass."""
    assert check_tool_call(
        POLICY, "gmail.send", {"to": ["ann@acme.com"], "attachments": ["q3.pdf"]}, "C-OPS"
    ).allowed
    assert check_tool_call(POLICY, "gmail.send", {"to": "Bo <bo@mail.customer.io>"}, None).allowed
    assert check_tool_call(POLICY, "crm.lookup", {"query": "acme"}, "C-PUBLIC").allowed
    assert check_tool_call(ToolPolicy(), "anything.at_all", {}, None).allowed


def test_the_stored_policy_is_applied_to_restored_arguments(
    guardrails: Guardrails, tenant: int
) -> None:
    """Through the facade the tenant's saved policy judges the real recipient behind a
    placeholder, and a refusal is logged and flagged on the conversation."""
    guardrails.policies.save(tenant, TenantPolicy(tools=POLICY), updated_by="test")
    guardrails.screen_inbound(tenant, "C4:1.1", "Mail bo@customer.io and eve@rival.net")
    ok = guardrails.check_tool(
        tenant, "C4:1.1", "gmail.send", {"to": ["<EMAIL_1>"]}, channel="C-OPS"
    )
    assert ok.decision.allowed and ok.arguments == {"to": ["bo@customer.io"]}

    with capture_logs() as logs:
        refused = guardrails.check_tool(
            tenant, "C4:1.1", "gmail.send", {"to": ["<EMAIL_2>"]}, channel="C-OPS"
        )
    assert not refused.decision.allowed
    assert refused.decision.reason_for_people.startswith("I may not email rival.net")
    assert [e["event"] for e in logs] == ["guardrails.tool_denied"]
    assert logs[0]["rule"] == "email.external_domains"
    view = guardrails.for_approver(tenant, "C4:1.1", "")
    assert view.flags[-1].startswith("Tool call refused by policy (gmail.send): I may not email")
