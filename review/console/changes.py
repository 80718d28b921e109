"""A workspace setting changed from the console: stored and audited in one transaction."""

from __future__ import annotations

from review.console import audit_log
from review.console.context import Invocation
from review.tenant_settings import update_async


async def change_setting(invocation: Invocation, column: str, value: object) -> None:
    """Set one `tenant_settings` column, audited as `settings.<column>`."""
    async with invocation.pool.connection() as conn, conn.transaction():
        await update_async(conn, invocation.tenant_id, {column: value})
        await audit_log.record(
            conn, invocation.tenant_id, invocation.user, f"settings.{column}", str(value)
        )
