"""`/agent tools` and `/agent policy`: the tenant's guardrail policy (guardrails/policy.py),
shown and changed one setting at a time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from guardrails.policy import TenantPolicy, document_async, store_async
from review.console import audit_log
from review.console.context import Invocation, Reply

POLICY_USAGE = (
    "Usage: `/agent policy` shows the guardrail policy; "
    "`/agent policy set SETTING VALUE` changes one setting, e.g. "
    "`/agent policy set pii.approver_view real`, `/agent policy set toxicity.action block`, "
    "`/agent policy set toxicity.threshold 0.7`, `/agent policy set pii.redact EMAIL_ADDRESS,PHONE_NUMBER`. "
    "`default` restores a setting's default."
)


async def tools(invocation: Invocation, args: list[str]) -> Reply:
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

    await _update_policy(invocation, change, f"tools.{verb}", name)
    if verb == "deny":
        return Reply(f"`{name}` is now denied: the assistant will not use it here.")
    return Reply(f"`{name}` is allowed again (unless another rule forbids it).")


async def policy(invocation: Invocation, args: list[str]) -> Reply:
    if not args:
        current_policy = await _load_policy(invocation)
        return Reply("*Guardrail policy*\n" + "\n".join(_policy_lines(current_policy)))
    if len(args) != 3 or args[0] != "set":
        return Reply(POLICY_USAGE)
    path, value = args[1].split("."), args[2]
    current = (await _load_policy(invocation)).model_dump(mode="json")
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
    await _update_policy(invocation, lambda _: updated, "policy.set", f"{args[1]}={value}")
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


async def _load_policy(invocation: Invocation) -> TenantPolicy:
    async with invocation.pool.connection() as conn:
        document = await document_async(conn, invocation.tenant_id)
    return TenantPolicy.model_validate(document if document is not None else {})


async def _update_policy(
    invocation: Invocation,
    change: Callable[[TenantPolicy], TenantPolicy],
    audit_action: str,
    subject: str,
) -> None:
    """Read, change and store the tenant's guardrail policy in one transaction, audited."""
    tenant_id, user = invocation.tenant_id, invocation.user
    async with invocation.pool.connection() as conn, conn.transaction():
        document = await document_async(conn, tenant_id, for_update=True)
        changed = change(TenantPolicy.model_validate(document if document is not None else {}))
        await store_async(conn, tenant_id, changed, user)
        await audit_log.record(conn, tenant_id, user, audit_action, subject)
