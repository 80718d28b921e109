"""Whether a tool call may be attempted at all, under a tenant's tool policy.

`check_tool_call` is pure: the policy, the call and the channel in, a decision with a
reason written for the person who asked out. A denied call is never attempted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from guardrails.policy import EmailRules, ToolPolicy, ToolRules

_ADDRESS = re.compile(r"[^@\s<>,;\"']+@([A-Za-z0-9.\-]+\.[A-Za-z]{2,})")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason_for_people: str  # shown in the thread when refused; empty when allowed
    rule: str | None = None  # which rule refused it, for logs and audit

    @classmethod
    def allow(cls) -> Decision:
        return cls(True, "")


def check_tool_call(
    policy: ToolPolicy, tool_name: str, arguments: Mapping[str, Any], channel: str | None
) -> Decision:
    """Run the call through the tenant's lists, the channel's lists, then the e-mail
    rules (for any call whose arguments name recipients). Placeholders must be restored
    before the check: a domain rule cannot judge <EMAIL_1>."""
    for scope, rules in _scopes(policy, channel):
        decision = _lists(rules, tool_name, scope)
        if not decision.allowed:
            return decision
    return _email_rules(policy.email, tool_name, arguments)


def _scopes(policy: ToolPolicy, channel: str | None) -> Iterable[tuple[str, ToolRules]]:
    yield "workspace", ToolRules(allow=policy.allow, deny=policy.deny)
    if channel is not None and channel in policy.channels:
        yield "channel", policy.channels[channel]


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def _lists(rules: ToolRules, tool_name: str, scope: str) -> Decision:
    where = "in this channel" if scope == "channel" else "in this workspace"
    if _matches(tool_name, rules.deny):
        return Decision(False, f"I'm not allowed to use {tool_name} {where}.", f"{scope}.deny")
    if rules.allow is not None and not _matches(tool_name, rules.allow):
        return Decision(
            False,
            f"{tool_name} isn't one of the tools I may use {where}.",
            f"{scope}.allow",
        )
    return Decision.allow()


def _values(arguments: Mapping[str, Any], fields: Iterable[str]) -> list[str]:
    found: list[str] = []
    for name in fields:
        value = arguments.get(name)
        if isinstance(value, str):
            found.extend(part.strip() for part in re.split(r"[,;]", value) if part.strip())
        elif isinstance(value, list | tuple):
            for item in value:
                if isinstance(item, str) and item.strip():
                    found.append(item.strip())
                elif isinstance(item, Mapping):
                    # {"email": ..., "name": ...} or {"filename": ...}
                    inner = item.get("email") or item.get("address") or item.get("filename")
                    found.append(str(inner or item))
    return found


def _domain(address: str) -> str | None:
    match = _ADDRESS.search(address)
    return match.group(1).lower().rstrip(".") if match else None


def _within(domain: str, domains: Iterable[str]) -> bool:
    return any(domain == d.lower() or domain.endswith("." + d.lower()) for d in domains)


def _email_rules(rules: EmailRules, tool_name: str, arguments: Mapping[str, Any]) -> Decision:
    recipients = _values(arguments, rules.recipient_fields)
    if not recipients:
        return Decision.allow()
    if rules.max_recipients is not None and len(recipients) > rules.max_recipients:
        return Decision(
            False,
            f"That message would go to {len(recipients)} recipients; "
            f"I may send to at most {rules.max_recipients} at once.",
            "email.max_recipients",
        )
    external: list[str] = []
    for recipient in recipients:
        domain = _domain(recipient)
        if domain is None:
            return Decision(
                False,
                f"I couldn't check the recipient {recipient!r}: it isn't an email address.",
                "email.unreadable_recipient",
            )
        if not _within(domain, rules.company_domains):
            external.append(domain)
    if rules.allowed_external_domains is not None:
        refused = sorted({d for d in external if not _within(d, rules.allowed_external_domains)})
        if refused:
            allowed = ", ".join(rules.allowed_external_domains) or "none"
            return Decision(
                False,
                f"I may not email {', '.join(refused)}: outside the company, "
                f"this workspace only allows {allowed}.",
                "email.external_domains",
            )
    attachments = _values(arguments, rules.attachment_fields)
    if attachments and external and not rules.attachments_outside_company:
        return Decision(
            False,
            "I may not send attachments outside the company; "
            "remove the attachment or send it to colleagues only.",
            "email.external_attachments",
        )
    return Decision.allow()


def recipient_domains(rules: EmailRules, arguments: Mapping[str, Any]) -> list[str] | None:
    """The distinct domains a call's recipients are at, sorted ([] when it names none);
    None when a recipient is not an email address, so no domain can speak for it."""
    domains: set[str] = set()
    for recipient in _values(arguments, rules.recipient_fields):
        domain = _domain(recipient)
        if domain is None:
            return None
        domains.add(domain)
    return sorted(domains)
