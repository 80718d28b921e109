""" "Approve & always allow": rules that approve an action without a card decision.

A rule covers one tool, for one requester's requests, or, for an email tool, for email
to one recipient domain; it lasts a number of days and can be revoked with
`/agent rules revoke N` (review/console/rules.py). Only someone who may approve the
action may create a rule from its card (review/decisions.py checks, as for Approve).

No rule is offered or honoured for:
- a tool, or email to a domain, that the tenant's policy marks always-review
  (`tools.always_review`, `tools.always_review_domains`, guardrails/policy.py);
- an action the guardrails flagged (a suspected injection, a screen's concern) or an
  answer they held back: a person looks at each of those;
- an email to recipients at more than one domain (no one domain speaks for them).

An action a live rule covers is approved when its run announces it (review/pending.py),
recorded as decided by the rule, and runs exactly once like any approved action; its
card says which rule allowed it and who set the rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

import structlog
from psycopg import AsyncConnection

from core.store import audit
from guardrails.at_rest import policy_of
from guardrails.policy import TenantPolicy
from review import actions
from review.messages import EMAIL_TOOLS, mrkdwn_safe, person

log = structlog.get_logger(__name__)

HELD_ANSWER_SUFFIX = ":held-answer"  # review/held_answers.py's idempotency keys
MAX_DAYS = 365

LIVE = "revoked_at IS NULL AND expires_at > now()"


@dataclass(frozen=True)
class Scope:
    """What a rule made from an action would cover."""

    tool: str
    requester: str | None = None
    recipient_domain: str | None = None


def scope_of(policy: TenantPolicy, action: actions.Row) -> Scope | None:
    """The rule "Approve & always allow" would make of `action`; None when no rule may
    cover it (see the module's docstring)."""
    if action.get("flags") or str(action["idempotency_key"]).endswith(HELD_ANSWER_SUFFIX):
        return None
    tool = str(action["tool"])
    if any(fnmatchcase(tool, pattern) for pattern in policy.tools.always_review):
        return None
    domains = action.get("recipient_domains")
    if domains and any(_within(d, policy.tools.always_review_domains) for d in domains):
        return None
    if tool in EMAIL_TOOLS:
        if domains is None or len(domains) != 1:
            return None
        return Scope(tool, recipient_domain=domains[0])
    return Scope(tool, requester=str(action["requested_by"]))


def offered(conn: actions.Conn, action: actions.Row) -> bool:
    """Whether the action's card offers "Approve & always allow"."""
    return (
        action["status"] == "pending"
        and scope_of(policy_of(conn, action["tenant_id"]), action) is not None
    )


def covering(conn: actions.Conn, action: actions.Row) -> actions.Row | None:
    """The live rule that covers `action`, if any (the oldest, when several do)."""
    scope = scope_of(policy_of(conn, action["tenant_id"]), action)
    if scope is None:
        return None
    return conn.execute(
        f"""SELECT * FROM action_rules
            WHERE tenant_id = %s AND tool = %s AND {LIVE}
              AND requester IS NOT DISTINCT FROM %s
              AND recipient_domain IS NOT DISTINCT FROM %s
            ORDER BY number LIMIT 1""",
        (action["tenant_id"], scope.tool, scope.requester, scope.recipient_domain),
    ).fetchone()


def create(conn: actions.Conn, action: actions.Row, user: str, days: int) -> actions.Row | None:
    """The rule made of `action` by `user` (who may approve it), lasting `days`; the same
    rule again when this action already made one (a retried click). None when no rule
    may cover the action."""
    scope = scope_of(policy_of(conn, action["tenant_id"]), action)
    if scope is None:
        return None
    days = max(1, min(MAX_DAYS, days))
    tenant_id = action["tenant_id"]
    with conn.transaction():
        # Numbers are the tenant's own, one after another.
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (RULE_LOCK, tenant_id))
        rule = conn.execute(
            """INSERT INTO action_rules
                 (tenant_id, number, tool, requester, recipient_domain, created_by,
                  created_from_action, expires_at)
               SELECT %s, coalesce(max(number), 0) + 1, %s, %s, %s, %s, %s, now() + %s
                 FROM action_rules WHERE tenant_id = %s
               ON CONFLICT (created_from_action) DO NOTHING
               RETURNING *""",
            (
                tenant_id,
                scope.tool,
                scope.requester,
                scope.recipient_domain,
                user,
                action["id"],
                timedelta(days=days),
                tenant_id,
            ),
        ).fetchone()
        if rule is None:
            return made_from(conn, action)
        audit.append(
            conn,
            audit.Entry(
                tenant_id=tenant_id,
                actor=user,
                action="rule.created",
                subject=f"rule:{rule['number']}",
                details={**_audited(rule), "from": f"action:{action['id']}"},
            ),
        )
    log.info("rule.created", tenant_id=tenant_id, rule=rule["number"], tool=scope.tool)
    return rule


def made_from(conn: actions.Conn, action: actions.Row) -> actions.Row | None:
    """The rule an "Approve & always allow" on `action` made, if one did."""
    return conn.execute(
        "SELECT * FROM action_rules WHERE created_from_action = %s AND tenant_id = %s",
        (action["id"], action["tenant_id"]),
    ).fetchone()


RULE_LOCK = 0x72756C65  # "rule": first key of the advisory lock numbering a tenant's rules


def allow_by_rules(conn: actions.Conn, tenant_id: int, run_id: int) -> list[actions.Row]:
    """Approve the run's pending actions that a live rule covers; the approved actions."""
    pending = conn.execute(
        """SELECT * FROM pending_actions
           WHERE run_id = %s AND tenant_id = %s AND status = 'pending' ORDER BY id""",
        (run_id, tenant_id),
    ).fetchall()
    allowed = []
    for action in pending:
        rule = covering(conn, action)
        if rule is None:
            continue
        row = actions.transition(
            conn,
            action,
            to="approved",
            allowed_from=["pending"],
            actor=f"rule {rule['number']}",
            audit_action="action.approved_by_rule",
            changes={"allowed_by_rule": rule["id"], "decided_at": actions.NOW},
            details=_audited(rule),
        )
        if row is not None:
            log.info("action.approved_by_rule", action_id=row["id"], rule=rule["number"])
            allowed.append(row)
    return allowed


# What a tool does, as the admins who read rules say it; other tools read as their name
# with spaces ("update deal stage"), never as the identifier the model calls.
TOOL_WORDS = {
    "post_to_channel": "posting in a channel",
    "send_email": "sending email",
    "reply_email": "replying to email",
}


def tool_words(tool: str) -> str:
    return TOOL_WORDS.get(tool) or tool.replace("_", " ").replace(".", " ")


def describe(rule: actions.Row) -> str:
    """A rule as people read it: "posting in a channel for <@U…>'s requests, until
    5 January 2027"."""
    what = tool_words(str(rule["tool"]))
    if rule["recipient_domain"]:
        covers = f"{what} to anyone at {mrkdwn_safe(rule['recipient_domain'])}"
    else:
        covers = f"{what} for {person(rule['requester'])}'s requests"
    return f"{covers}, until {readable_date(rule['expires_at'])}"


def readable_date(when: datetime) -> str:
    return f"{when:%-d %B %Y}"


def by_id(conn: actions.Conn, tenant_id: int, rule_id: int) -> actions.Row | None:
    return conn.execute(
        "SELECT * FROM action_rules WHERE id = %s AND tenant_id = %s", (rule_id, tenant_id)
    ).fetchone()


def decided_by(conn: actions.Conn, action: actions.Row) -> str:
    """Who approved the action, as a person reads it: a mention, or the rule that did."""
    if action.get("allowed_by_rule"):
        rule = by_id(conn, action["tenant_id"], action["allowed_by_rule"])
        if rule is not None:
            return f"the rule '{describe(rule)}', set by {person(rule['created_by'])}"
    if action.get("decided_by"):
        return person(str(action["decided_by"]))
    return "nobody"


def _audited(rule: actions.Row) -> dict[str, Any]:
    return {
        "rule": rule["number"],
        "tool": rule["tool"],
        "requester": rule["requester"],
        "recipient_domain": rule["recipient_domain"],
        "until": rule["expires_at"].isoformat(),
        "set_by": rule["created_by"],
    }


def _within(domain: str, patterns: list[str]) -> bool:
    domain = domain.lower()
    return any(
        fnmatchcase(domain, p.lower()) or domain == p.lower() or domain.endswith("." + p.lower())
        for p in patterns
    )


async def in_force_async(
    conn: AsyncConnection[actions.Row], tenant_id: int, limit: int
) -> list[actions.Row]:
    """The tenant's live rules, by number (what `/agent rules` lists)."""
    cursor = await conn.execute(
        f"""SELECT * FROM action_rules WHERE tenant_id = %s AND {LIVE}
            ORDER BY number LIMIT %s""",
        (tenant_id, limit),
    )
    return await cursor.fetchall()


async def revoke_async(
    conn: AsyncConnection[actions.Row], tenant_id: int, number: int, user: str
) -> actions.Row | None:
    """Revoke live rule `number`; the rule, or None when no such rule is in force."""
    cursor = await conn.execute(
        f"""UPDATE action_rules SET revoked_at = now(), revoked_by = %s
            WHERE tenant_id = %s AND number = %s AND {LIVE}
            RETURNING *""",
        (user, tenant_id, number),
    )
    return await cursor.fetchone()
