"""`/agent`: the admin slash commands, answered straight from the listener.

Each answer is a few quick queries, well inside Slack's 3-second window, so it goes back
in the ack itself. Changing commands are for workspace admins and the tenant's own app
admins; everyone else gets a plain refusal. Every change is audited.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb
from pydantic import ValidationError
from slack_sdk.web.async_client import AsyncWebClient

from connectors.catalog import CONNECTORS, connect_usage
from connectors.credentials import CredentialCipher, store_async
from core.agent_template import AgentTemplate
from core.db import AsyncPool
from guardrails.policy import TenantPolicy
from guardrails.status import budget_line
from review.answer_feedback import feedback_summary
from review.authority import OUTSIDER, Verdict, check_admin, check_member
from review.channel_commands import channel_command, template_command
from review.digest_commands import digest_command, timezone_command
from review.golden_cases import feedback_blocks, items_async
from review.handoff import parse_target
from review.inbox_commands import inbox_command
from review.messages import people_summary, person, shown
from review.rule_commands import escalate_command, list_rules, rules_command
from review.tenant_settings import load_async

USER_REF = re.compile(r"^<@(?P<id>[UW][A-Z0-9]+)(\|[^>]*)?>$|^(?P<raw>[UW][A-Z0-9]+)$")
CHANNEL_REF = re.compile(r"^<#(?P<id>[CG][A-Z0-9]+)(\|[^>]*)?>$|^(?P<raw>[CG][A-Z0-9]+)$")
AUDIT_DEFAULT, AUDIT_MAX = 10, 50
LIST_MAX = 20  # pending approvals listed

HELP = """*`/agent` commands*
• `help`: this list
• `status`: backlog, pending approvals, model providers, spend
• `approvals`: pending approvals, with links
• `approval-channel #channel`: where actions wait for approval _(admins)_
• `approvers add|remove @person`: who may approve actions _(admins)_
• `admins [add|remove @person]`: this app's own admins, who can always `pause` _(admins)_
• `four-eyes on|off`: whether requesters may approve their own actions _(admins)_
• `escalate [@person|@group … after 2h | off]`: who undecided actions go to next _(admins)_
• `rules`: the always-allow rules approvers made; `rules revoke N`, `rules days N` _(admins)_
• `digest #channel daily|weekdays 09:00 [to #other|me]`, `digest list`, `digest remove N`: scheduled summaries of a channel _(to a channel: admins; `to me`: anyone in it)_
• `timezone [ZONE]`: the workspace's time zone for digests and "since Monday", e.g. Europe/Paris _(admins to change)_
• `email-threads sender|domain`: who may join an email conversation by replying to it _(admins)_
• `tools allow|deny NAME`: which tools the assistant may use here _(admins)_
• `policy` / `policy set SETTING VALUE`: personal data, toxicity and injection rules _(admins)_
• `pause` / `resume`: stop or restart answering and acting in this workspace _(admins)_
• `connect NAME [TOKEN]`: how to connect HubSpot, Zendesk, Google Calendar or Gmail, then store its credential _(admins)_
• `template [NAME [#channel]]`: the agent template (sales, support, knowledge) used here _(admins)_
• `channel [#channel] [template=… reply=mention|all visibility=public|private collections=a,b ask=@group]`: how I behave in a channel _(admins)_
• `inbox [ADDRESS template=… collections=a,b]`: what the agent inbox answers emails with _(admins)_
• `handoff @person|@group`: who "Ask a human" under an answer hands the thread to _(admins)_
• `feedback`: 👍 / 👎 counts, sources marked wrong or outdated, the handoff target, and the latest 👎, edits and rejections to make golden cases from _(admins)_
• `audit [N]`: the last N audit entries _(admins)_"""


@dataclass(frozen=True)
class Reply:
    text: str
    response_type: str = "ephemeral"
    blocks: list[dict[str, Any]] | None = None  # when given, `text` is the fallback


Handler = Callable[[AsyncPool, int, str, list[str]], Awaitable[Reply]]


@dataclass(frozen=True)
class GuardrailStatus:
    """What `status` shows about the guardrails: configured checks and the budget ratio."""

    check_lines: list[str]
    budget_warn_ratio: float


async def run_agent_command(
    pool: AsyncPool,
    client: AsyncWebClient,
    tenant_id: int,
    command: dict[str, Any],
    guardrails: GuardrailStatus,
    credentials: CredentialCipher,
    templates: Mapping[str, AgentTemplate] | None = None,
    model: str | None = None,
) -> Reply:
    """`model` is what `status` says about the language model (`review.model_status`)."""
    words = (command.get("text") or "").split()
    name, args = (words[0].lower(), words[1:]) if words else ("help", [])
    user = command["user_id"]
    # Every subcommand, even help: in a Slack Connect channel, people of another
    # organisation can run it too (review/authority.py).
    member = await check_member(pool, client, tenant_id, user)
    if not member.allowed:
        return Reply(_refusal(member, name))
    if name == "status":
        return await _status(pool, tenant_id, guardrails, model)
    if name == "digest":  # `to me` is for anyone in the channel; the rest checks admins
        return Reply(await digest_command(pool, client, tenant_id, user, args))
    if name == "timezone" and args:
        admin = await check_admin(pool, client, tenant_id, user)
        if not admin.allowed:
            return Reply(_refusal(admin, name))
    if name == "timezone":
        return Reply(await timezone_command(pool, tenant_id, user, args))
    if name in READING and not (name == "rules" and args):
        return await READING[name](pool, tenant_id, user, args)
    if name in CHANGING or name in ("connect", "template", "channel", "inbox"):
        # Pause must work when Slack is failing: it may use an older admin verdict.
        admin = await check_admin(pool, client, tenant_id, user, emergency=name == "pause")
        if not admin.allowed:
            return Reply(_refusal(admin, name))
        if name == "template":
            return Reply(await template_command(pool, tenant_id, user, args, templates or {}))
        if name == "inbox":
            return Reply(await inbox_command(pool, tenant_id, user, args, templates or {}))
        if name == "channel":
            here = command.get("channel_id", "")
            return Reply(
                await channel_command(pool, client, tenant_id, user, here, args, templates or {})
            )
        if name == "connect":  # the one command that needs the credentials key
            return await _connect(pool, tenant_id, user, args, credentials)
        return await CHANGING[name](pool, tenant_id, user, args)
    return Reply(HELP if name == "help" else f"I don't know `{name}`.\n{HELP}")


async def load_action(pool: AsyncPool, tenant_id: int, action_id: int) -> dict[str, Any] | None:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT * FROM pending_actions WHERE id = %s AND tenant_id = %s", (action_id, tenant_id)
        )
        return await cursor.fetchone()


async def load_action_by_message(
    pool: AsyncPool, tenant_id: int, channel: str, ts: str
) -> dict[str, Any] | None:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            """SELECT * FROM pending_actions
               WHERE tenant_id = %s AND approval_channel_id = %s AND approval_ts = %s""",
            (tenant_id, channel, ts),
        )
        return await cursor.fetchone()


def _refusal(verdict: Verdict, name: str) -> str:
    if verdict.slack_unavailable:
        return verdict.reason
    if verdict.reason == OUTSIDER:
        return "Only people of this workspace's own organisation can use `/agent`."
    return f"Only workspace admins and this app's admins can use `/agent {name}`."


async def _status(
    pool: AsyncPool, tenant_id: int, guardrails: GuardrailStatus, model: str | None = None
) -> Reply:
    async with pool.connection() as conn:
        settings = await load_async(conn, tenant_id)
        counts = await (
            await conn.execute(
                """SELECT
                     (SELECT count(*) FROM inbound_requests WHERE tenant_id = %(t)s
                        AND status IN ('received', 'queued', 'running')) AS backlog,
                     (SELECT count(*) FROM inbound_requests WHERE tenant_id = %(t)s
                        AND status = 'failed' AND received_at > now() - interval '1 day')
                        AS failed_today,
                     (SELECT count(*) FROM pending_actions WHERE tenant_id = %(t)s
                        AND status = 'pending') AS pending,
                     (SELECT coalesce(sum(cost_usd), 0) FROM llm_usage WHERE tenant_id = %(t)s
                        AND created_at >= date_trunc('day', now())) AS spend_today,
                     (SELECT coalesce(sum(cost_usd), 0) FROM llm_usage WHERE tenant_id = %(t)s
                        AND created_at >= date_trunc('month', now())) AS spend_month""",
                {"t": tenant_id},
            )
        ).fetchone()
        providers = await (
            await conn.execute(
                """SELECT provider, count(*) FILTER (WHERE outcome = 'ok') AS ok,
                          count(*) FILTER (WHERE outcome <> 'ok') AS failed
                   FROM llm_usage WHERE tenant_id = %s AND created_at > now() - interval '15 minutes'
                   GROUP BY provider ORDER BY provider""",
                (tenant_id,),
            )
        ).fetchall()
        budget = await budget_line(conn, tenant_id, warn_ratio=guardrails.budget_warn_ratio)
    assert counts is not None
    health = (
        ", ".join(f"{p['provider']}: {p['ok']} ok / {p['failed']} failed" for p in providers)
        or "no calls in the last 15 minutes"
    )
    channel = f"<#{settings.approval_channel_id}>" if settings.approval_channel_id else "not set"
    lines = [
        "*Assistant status*" + (" — :double_vertical_bar: *paused*" if settings.paused else ""),
        f"• Requests waiting or running: {counts['backlog']}; failed in the last day: {counts['failed_today']}",
        f"• Pending approvals: {counts['pending']} (approval channel: {channel})",
        *([f"• {model}"] if model else []),
        f"• Model providers, last 15 minutes: {health}",
        f"• Spend: ${counts['spend_today']:.4f} today, ${counts['spend_month']:.4f} this month",
        f"• Budget: {budget}",
        *(f"• Guardrails, {line}" for line in guardrails.check_lines),
    ]
    return Reply("\n".join(lines))


async def _approvals(pool: AsyncPool, tenant_id: int, user: str, args: list[str]) -> Reply:
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(
                """SELECT id, summary, shown, requested_by, approval_channel_id, approval_ts, expires_at
                   FROM pending_actions WHERE tenant_id = %s AND status = 'pending'
                   ORDER BY created_at LIMIT %s""",
                (tenant_id, LIST_MAX),
            )
        ).fetchall()
    if not rows:
        return Reply("No actions are waiting for approval.")
    lines = ["*Waiting for approval*"]
    for row in rows:
        link = (
            f" · <https://slack.com/archives/{row['approval_channel_id']}/p{row['approval_ts'].replace('.', '')}|open>"
            if row["approval_ts"]
            else " · not posted yet (no approval channel)"
        )
        lines.append(
            f"• {people_summary(row)}, for {person(str(shown(row, 'requested_by')))}{link}"
        )
    return Reply("\n".join(lines))


async def _audit(pool: AsyncPool, tenant_id: int, user: str, args: list[str]) -> Reply:
    limit = AUDIT_DEFAULT
    if args and args[0].isdigit():
        limit = max(1, min(AUDIT_MAX, int(args[0])))
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(
                """SELECT created_at, actor, action, subject FROM audit_log
                   WHERE tenant_id = %s ORDER BY id DESC LIMIT %s""",
                (tenant_id, limit),
            )
        ).fetchall()
    if not rows:
        return Reply("The audit log is empty.")
    lines = [f"*Last {len(rows)} audit entries*"] + [
        f"• {r['created_at']:%Y-%m-%d %H:%M} {_who(r['actor'])} {r['action']} {r['subject'] or ''}"
        for r in rows
    ]
    return Reply("\n".join(lines))


async def _approval_channel(pool: AsyncPool, tenant_id: int, user: str, args: list[str]) -> Reply:
    match = CHANNEL_REF.match(args[0]) if args else None
    if match is None:
        return Reply("Usage: `/agent approval-channel #channel`")
    channel = match.group("id") or match.group("raw")
    await _change_settings(pool, tenant_id, user, "approval_channel_id", channel)
    return Reply(
        f"Actions will wait for approval in <#{channel}>. Invite me there if I'm not in it yet."
    )


async def _approvers(pool: AsyncPool, tenant_id: int, user: str, args: list[str]) -> Reply:
    person = _list_change(args)
    if person is None:
        return Reply("Usage: `/agent approvers add @person` or `/agent approvers remove @person`")
    await _change_list(pool, tenant_id, user, "approvers", args[0], person)
    verb = "can now approve" if args[0] == "add" else "can no longer approve"
    return Reply(f"<@{person}> {verb} actions.")


async def _admins(pool: AsyncPool, tenant_id: int, user: str, args: list[str]) -> Reply:
    """The app's own admins: they may run every changing command, and `/agent pause`
    works for them even when Slack cannot say who is a workspace admin."""
    if not args:
        async with pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT slack_user_id FROM tenant_admins WHERE tenant_id = %s ORDER BY added_at",
                    (tenant_id,),
                )
            ).fetchall()
        if not rows:
            return Reply("This app has no admins of its own; workspace admins steer it.")
        return Reply("This app's admins: " + ", ".join(f"<@{r['slack_user_id']}>" for r in rows))
    person = _list_change(args)
    if person is None:
        return Reply("Usage: `/agent admins add @person` or `/agent admins remove @person`")
    await _change_list(pool, tenant_id, user, "admins", args[0], person)
    if args[0] == "add":
        return Reply(f"<@{person}> is now one of this app's admins.")
    return Reply(f"<@{person}> is no longer one of this app's admins.")


# The lists of people `/agent approvers` and `/agent admins` change. The table comes from
# here, never from what was typed.
PEOPLE_LISTS = {"approvers": "tenant_approvers", "admins": "tenant_admins"}


def _list_change(args: list[str]) -> str | None:
    """The Slack user id in `add @person` / `remove @person`; None for anything else."""
    if len(args) != 2 or args[0] not in ("add", "remove"):
        return None
    match = USER_REF.match(args[1])
    return (match.group("id") or match.group("raw")) if match else None


async def _change_list(
    pool: AsyncPool, tenant_id: int, user: str, name: str, change: str, person: str
) -> None:
    """Add or remove ``person`` on one of PEOPLE_LISTS, audited in the same transaction."""
    table = sql.Identifier(PEOPLE_LISTS[name])
    async with pool.connection() as conn, conn.transaction():
        if change == "add":
            await conn.execute(
                sql.SQL(
                    """INSERT INTO {} (tenant_id, slack_user_id, added_by)
                       VALUES (%s, %s, %s) ON CONFLICT DO NOTHING"""
                ).format(table),
                (tenant_id, person, user),
            )
        else:
            await conn.execute(
                sql.SQL("DELETE FROM {} WHERE tenant_id = %s AND slack_user_id = %s").format(table),
                (tenant_id, person),
            )
        await _audit_change(conn, tenant_id, user, f"{name}.{change}", person)


async def _email_threads(pool: AsyncPool, tenant_id: int, user: str, args: list[str]) -> Reply:
    """Who may join an email conversation by replying to it (connectors/email/threads.py)."""
    if not args or args[0] not in ("sender", "domain"):
        return Reply(
            "Usage: `/agent email-threads sender` (only people who took part in a thread "
            "join it; the default) or `/agent email-threads domain` (anyone at their domain)"
        )
    await _change_settings(pool, tenant_id, user, "email_thread_scope", args[0])
    if args[0] == "domain":
        return Reply(
            "A reply now joins an email conversation when anyone at the sender's domain took "
            "part in it. Don't use this if your customers write from shared domains like gmail.com."
        )
    return Reply("A reply now joins an email conversation only when its sender took part in it.")


async def _four_eyes(pool: AsyncPool, tenant_id: int, user: str, args: list[str]) -> Reply:
    if not args or args[0] not in ("on", "off"):
        return Reply("Usage: `/agent four-eyes on|off`")
    await _change_settings(pool, tenant_id, user, "four_eyes", args[0] == "on")
    if args[0] == "on":
        return Reply("Requesters can no longer approve their own actions.")
    return Reply("Requesters may approve their own actions.")


async def _pause(pool: AsyncPool, tenant_id: int, user: str, args: list[str]) -> Reply:
    await _change_settings(pool, tenant_id, user, "paused", True)
    return Reply(
        ":double_vertical_bar: Paused: I will answer new requests with a notice and run no actions "
        "until someone runs `/agent resume`.",
        response_type="in_channel",
    )


async def _resume(pool: AsyncPool, tenant_id: int, user: str, args: list[str]) -> Reply:
    await _change_settings(pool, tenant_id, user, "paused", False)
    return Reply(":arrow_forward: Resumed: answering and acting again.", response_type="in_channel")


async def _change_settings(
    pool: AsyncPool, tenant_id: int, user: str, column: str, value: object
) -> None:
    query = sql.SQL(
        """INSERT INTO tenant_settings (tenant_id, {column}) VALUES (%s, %s)
           ON CONFLICT (tenant_id) DO UPDATE SET {column} = EXCLUDED.{column}, updated_at = now()"""
    ).format(column=sql.Identifier(column))
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(query, (tenant_id, value))
        await _audit_change(conn, tenant_id, user, f"settings.{column}", str(value))


async def _audit_change(conn: Any, tenant_id: int, user: str, action: str, subject: str) -> None:
    await conn.execute(
        "INSERT INTO audit_log (tenant_id, actor, action, subject, details) VALUES (%s, %s, %s, %s, %s)",
        (tenant_id, user, action, subject, Jsonb({"via": "/agent"})),
    )


def _who(actor: str) -> str:
    return f"<@{actor}>" if USER_REF.match(actor) else actor


async def _tools(pool: AsyncPool, tenant_id: int, user: str, args: list[str]) -> Reply:
    if len(args) != 2 or args[0] not in ("allow", "deny"):
        return Reply("Usage: `/agent tools allow NAME` or `/agent tools deny NAME`")
    verb, name = args

    def change(policy: TenantPolicy) -> TenantPolicy:
        deny = [d for d in policy.tools.deny if d != name]
        allow = policy.tools.allow
        if verb == "deny":
            deny.append(name)
            allow = [a for a in allow if a != name] if allow is not None else None
        elif allow is not None and name not in allow:
            allow = [*allow, name]
        return policy.model_copy(
            update={"tools": policy.tools.model_copy(update={"deny": deny, "allow": allow})}
        )

    await _update_policy(pool, tenant_id, user, change, f"tools.{verb}", name)
    if verb == "deny":
        return Reply(f"`{name}` is now denied: the assistant will not use it here.")
    return Reply(f"`{name}` is allowed again (unless another rule forbids it).")


POLICY_USAGE = (
    "Usage: `/agent policy` shows the guardrail policy; "
    "`/agent policy set SETTING VALUE` changes one setting, e.g. "
    "`/agent policy set pii.approver_view real`, `/agent policy set toxicity.action block`, "
    "`/agent policy set toxicity.threshold 0.7`, `/agent policy set pii.redact EMAIL_ADDRESS,PHONE_NUMBER`. "
    "`default` restores a setting's default."
)


async def _policy(pool: AsyncPool, tenant_id: int, user: str, args: list[str]) -> Reply:
    if not args:
        policy = await _load_policy(pool, tenant_id)
        return Reply("*Guardrail policy*\n" + "\n".join(_policy_lines(policy)))
    if len(args) != 3 or args[0] != "set":
        return Reply(POLICY_USAGE)
    path, value = args[1].split("."), args[2]
    current = (await _load_policy(pool, tenant_id)).model_dump(mode="json")
    if (
        len(path) != 2
        or not isinstance(current.get(path[0]), dict)
        or path[1] not in current[path[0]]
    ):
        return Reply(
            f"There is no setting `{args[1]}`.\n" + "\n".join(_policy_lines(TenantPolicy()))
        )
    section = dict(current[path[0]])
    if value == "default":
        section.pop(path[1])
    else:
        section[path[1]] = _parse_setting(value, section[path[1]])
    try:
        updated = TenantPolicy.model_validate({**current, path[0]: section})
    except ValidationError as exc:
        reasons = "; ".join(str(e["msg"]) for e in exc.errors())
        return Reply(f"`{args[1]}` cannot be `{value}`: {reasons}")
    await _update_policy(
        pool, tenant_id, user, lambda _: updated, "policy.set", f"{args[1]}={value}"
    )
    shown = getattr(getattr(updated, path[0]), path[1])
    return Reply(f"`{args[1]}` is now `{_format_setting(shown)}`.")


def _parse_setting(value: str, current: Any) -> Any:
    """A setting's new value, shaped like its current one: lists are comma-separated."""
    if isinstance(current, list):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(current, bool):
        return value.lower() in ("on", "true", "yes", "1")
    return value


def _format_setting(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "default" if value is None else str(value)


def _policy_lines(policy: TenantPolicy) -> list[str]:
    return [
        f"• `{section}.{name}`: `{_format_setting(value)}`"
        for section, values in policy.model_dump(mode="json").items()
        if isinstance(values, dict)
        for name, value in values.items()
    ]


async def _load_policy(pool: AsyncPool, tenant_id: int) -> TenantPolicy:
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT policy FROM guardrail_policies WHERE tenant_id = %s", (tenant_id,)
            )
        ).fetchone()
    return TenantPolicy.model_validate(row["policy"] if row else {})


async def _update_policy(
    pool: AsyncPool,
    tenant_id: int,
    user: str,
    change: Callable[[TenantPolicy], TenantPolicy],
    audit_action: str,
    subject: str,
) -> None:
    """Read, change and store the tenant's guardrail policy in one transaction, audited."""
    async with pool.connection() as conn, conn.transaction():
        row = await (
            await conn.execute(
                "SELECT policy FROM guardrail_policies WHERE tenant_id = %s FOR UPDATE",
                (tenant_id,),
            )
        ).fetchone()
        policy = change(TenantPolicy.model_validate(row["policy"] if row else {}))
        await conn.execute(
            """INSERT INTO guardrail_policies (tenant_id, policy, updated_by) VALUES (%s, %s, %s)
               ON CONFLICT (tenant_id) DO UPDATE SET policy = EXCLUDED.policy,
                 updated_by = EXCLUDED.updated_by, updated_at = now()""",
            (tenant_id, Jsonb(policy.model_dump(mode="json")), user),
        )
        await _audit_change(conn, tenant_id, user, audit_action, subject)


async def _connect(
    pool: AsyncPool, tenant_id: int, user: str, args: list[str], cipher: CredentialCipher
) -> Reply:
    setup = CONNECTORS.get(args[0].lower()) if args else None
    if setup is None:
        return Reply(connect_usage())
    if len(args) == 1:
        return Reply(setup.instructions)
    credential = setup.credential(args[1:])
    if credential is None:
        # Never repeat the words back: they may hold a token.
        return Reply(f"That doesn't look like a {setup.title} credential. {setup.usage}")
    await store_async(pool, cipher, tenant_id, setup.name, credential, user)
    return Reply(
        f":white_check_mark: {setup.title} is connected. The token is stored encrypted; "
        "run the command again with a new token to replace it."
    )


async def _handoff(pool: AsyncPool, tenant_id: int, user: str, args: list[str]) -> Reply:
    target = parse_target(args[0]) if len(args) == 1 else None
    if target is None:
        return Reply("Usage: `/agent handoff @person` or `/agent handoff @user-group`")
    await _change_settings(pool, tenant_id, user, "handoff_target", target)
    return Reply(f'"Ask a human" under an answer now hands the thread to {target}.')


async def _feedback(pool: AsyncPool, tenant_id: int, user: str, args: list[str]) -> Reply:
    """The summary, then the latest feedback, each with "Make a golden case"."""
    summary = await feedback_summary(pool, tenant_id)
    found, team = await items_async(pool, tenant_id)
    return Reply(summary, blocks=feedback_blocks(summary, found, team))


async def _escalate(pool: AsyncPool, tenant_id: int, user: str, args: list[str]) -> Reply:
    return Reply(await escalate_command(pool, tenant_id, user, args))


async def _rules(pool: AsyncPool, tenant_id: int, user: str, args: list[str]) -> Reply:
    if not args:
        return Reply(await list_rules(pool, tenant_id))
    return Reply(await rules_command(pool, tenant_id, user, args))


READING: dict[str, Handler] = {"approvals": _approvals, "rules": _rules}
CHANGING: dict[str, Handler] = {
    "approval-channel": _approval_channel,
    "approvers": _approvers,
    "admins": _admins,
    "four-eyes": _four_eyes,
    "email-threads": _email_threads,
    "tools": _tools,
    "policy": _policy,
    "pause": _pause,
    "resume": _resume,
    "audit": _audit,
    "handoff": _handoff,
    "feedback": _feedback,
    "escalate": _escalate,
    "rules": _rules,  # revoke and days; the listing is READING's
}
