"""`/agent connect` and `/agent email-threads`: the connectors' credentials
(connectors/catalog.py, connectors/credentials.py) and who may join an email
conversation (connectors/email/threads.py)."""

from __future__ import annotations

from connectors.catalog import CONNECTORS, connect_usage
from connectors.credentials import store_async
from review.console.changes import change_setting
from review.console.context import Invocation, Reply


async def connect(invocation: Invocation, args: list[str]) -> Reply:
    setup = CONNECTORS.get(args[0].lower()) if args else None
    if setup is None:
        return Reply(connect_usage())
    if len(args) == 1:
        return Reply(setup.instructions)
    credential = setup.credential(args[1:])
    if credential is None:
        # Never repeat the words back: they may hold a token.
        return Reply(f"That doesn't look like a {setup.title} credential. {setup.usage}")
    await store_async(
        invocation.pool,
        invocation.credentials,
        invocation.tenant_id,
        setup.name,
        credential,
        invocation.user,
    )
    return Reply(
        f":white_check_mark: {setup.title} is connected. The token is stored encrypted; "
        "run the command again with a new token to replace it."
    )


async def email_threads(invocation: Invocation, args: list[str]) -> Reply:
    """Who may join an email conversation by replying to it (connectors/email/threads.py)."""
    if not args or args[0] not in ("sender", "domain"):
        return Reply(
            "Usage: `/agent email-threads sender` (only people who took part in a thread "
            "join it; the default) or `/agent email-threads domain` (anyone at their domain)"
        )
    await change_setting(invocation, "email_thread_scope", args[0])
    if args[0] == "domain":
        return Reply(
            "A reply now joins an email conversation when anyone at the sender's domain took "
            "part in it. Don't use this if your customers write from shared domains like gmail.com."
        )
    return Reply("A reply now joins an email conversation only when its sender took part in it.")
