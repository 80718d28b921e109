"""Which Slack workspaces we serve: tenants and their bot installations, in Postgres.

Both ways of installing end here: Bolt's OAuth flow saves through
`PostgresInstallationStore`, and single-workspace mode (`SLACK_BOT_TOKEN`) records its one
workspace at start through `record_installation`. Every incoming request is then
authorised by `TenantAuthorize`, so a workspace we have no installation for is refused
the same way in both modes. The lookup is remembered for INSTALLATION_CACHE_SECONDS
(`InstallationCache`): a busy workspace's events would otherwise ask Postgres the same
question many times a second, before every ack. A tenant suspended, or a workspace
installed or removed by another process, takes effect within that time; an install
through this process, at once.

Bot tokens are stored sealed (connectors/slack/bot_tokens.py), never in clear.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncAuthorize
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore

from connectors.slack.bot_tokens import seal_bot_token, with_bot_token
from core.db import AsyncPool
from core.store import audit

log = structlog.get_logger(__name__)

OAUTH_STATE_TTL = timedelta(minutes=10)
INSTALLATION_CACHE_SECONDS = 10.0
MAX_CACHED = 10_000  # workspaces; beyond this the cache starts afresh


async def find_installation(
    pool: AsyncPool, team_id: str | None, enterprise_id: str | None
) -> dict[str, Any] | None:
    """The bot installation of an active tenant's workspace, with its tenant id."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            """SELECT i.*, t.id AS tenant_id
               FROM slack_installations i JOIN tenants t ON t.id = i.tenant_id
               WHERE i.team_id = %s AND i.enterprise_id = %s AND t.status = 'active'""",
            (team_id or "", enterprise_id or ""),
        )
        return with_bot_token(await cursor.fetchone())


async def record_installation(
    pool: AsyncPool, installation: Installation, team_name: str | None = None
) -> int:
    """Create or refresh the tenant and its bot installation; return the tenant id."""
    team_id = installation.team_id or ""
    enterprise_id = installation.enterprise_id or ""
    async with pool.connection() as conn, conn.transaction():
        row = await (
            await conn.execute(
                """INSERT INTO tenants (name, slack_team_id, slack_enterprise_id)
                   VALUES (%s, %s, NULLIF(%s, ''))
                   ON CONFLICT (slack_team_id) DO UPDATE SET name = EXCLUDED.name
                   RETURNING id""",
                (team_name or installation.team_name or team_id, team_id, enterprise_id),
            )
        ).fetchone()
        assert row is not None
        tenant_id: int = row["id"]
        await conn.execute(
            """INSERT INTO slack_installations
                 (tenant_id, team_id, enterprise_id, app_id, bot_id, bot_user_id, bot_token,
                  bot_token_sealed, bot_scopes, installer_user_id, is_enterprise_install, raw)
               VALUES (%s, %s, %s, %s, %s, %s, '', %s, %s, %s, %s, %s)
               ON CONFLICT (enterprise_id, team_id) DO UPDATE SET
                 app_id = EXCLUDED.app_id, bot_id = EXCLUDED.bot_id,
                 bot_user_id = EXCLUDED.bot_user_id, bot_token = '',
                 bot_token_sealed = EXCLUDED.bot_token_sealed,
                 bot_scopes = EXCLUDED.bot_scopes,
                 installer_user_id = EXCLUDED.installer_user_id,
                 raw = EXCLUDED.raw, installed_at = now()""",
            (
                tenant_id,
                team_id,
                enterprise_id,
                installation.app_id,
                installation.bot_id,
                installation.bot_user_id,
                seal_bot_token(tenant_id, installation.bot_token or ""),
                ",".join(installation.bot_scopes or []),
                installation.user_id,
                installation.is_enterprise_install,
                json.dumps(_public_fields(installation)),
            ),
        )
        await audit.append_async(
            conn,
            audit.Entry(
                tenant_id=tenant_id,
                actor=installation.user_id or "system",
                action="slack.installed",
                subject=team_id,
            ),
        )
    return tenant_id


def _public_fields(installation: Installation) -> dict[str, Any]:
    # Tokens live in their own column; the raw copy must not duplicate them.
    return {
        key: value
        for key, value in installation.to_dict().items()
        if "token" not in key and "secret" not in key and not isinstance(value, datetime)
    }


class InstallationCache:
    """`find_installation`'s answers, "none" included, remembered for a few seconds."""

    def __init__(
        self,
        pool: AsyncPool,
        *,
        seconds: float = INSTALLATION_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self.seconds = seconds
        self.clock = clock
        self._known: dict[tuple[str, str], tuple[float, dict[str, Any] | None]] = {}

    async def find(self, team_id: str | None, enterprise_id: str | None) -> dict[str, Any] | None:
        key = (team_id or "", enterprise_id or "")
        now = self.clock()
        cached = self._known.get(key)
        if cached is not None and now - cached[0] < self.seconds:
            return cached[1]
        row = await find_installation(self.pool, team_id, enterprise_id)
        if len(self._known) >= MAX_CACHED:
            self._known.clear()
        self._known[key] = (now, row)
        return row

    def forget(self) -> None:
        """After an install: the next request looks again."""
        self._known.clear()


class TenantAuthorize(AsyncAuthorize):
    """Bolt's authorize step: a request is served only for a known, active tenant."""

    def __init__(self, installations: InstallationCache) -> None:
        self.installations = installations

    async def __call__(
        self,
        *,
        context: AsyncBoltContext,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None,
        **_: Any,
    ) -> AuthorizeResult | None:
        row = await self.installations.find(team_id, enterprise_id)
        if row is None:
            log.warning("slack.unknown_workspace", team_id=team_id, enterprise_id=enterprise_id)
            return None
        context["tenant_id"] = row["tenant_id"]
        return AuthorizeResult(
            enterprise_id=enterprise_id,
            team_id=team_id,
            bot_token=row["bot_token"],
            bot_id=row["bot_id"],
            bot_user_id=row["bot_user_id"],
            bot_scopes=row["bot_scopes"],
            user_id=user_id,
        )


class PostgresInstallationStore(AsyncInstallationStore):
    """Where Bolt's OAuth flow saves a new installation."""

    def __init__(self, pool: AsyncPool, on_saved: Callable[[], None] = lambda: None) -> None:
        self.pool = pool
        self.on_saved = on_saved

    async def async_save(self, installation: Installation) -> None:
        await record_installation(self.pool, installation)
        self.on_saved()

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        row = await find_installation(self.pool, team_id, enterprise_id)
        if row is None:
            return None
        return Bot(
            app_id=row["app_id"],
            enterprise_id=enterprise_id,
            team_id=team_id,
            bot_token=row["bot_token"],
            bot_id=row["bot_id"],
            bot_user_id=row["bot_user_id"],
            bot_scopes=row["bot_scopes"],
            is_enterprise_install=row["is_enterprise_install"],
            installed_at=row["installed_at"].timestamp(),
        )


class PostgresOAuthStateStore(AsyncOAuthStateStore):
    """One-time OAuth `state` values, so an install callback cannot be replayed or forged."""

    def __init__(self, pool: AsyncPool) -> None:
        self.pool = pool

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        state = secrets.token_urlsafe(24)
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO oauth_states (state, expires_at) VALUES (%s, %s)",
                (state, datetime.now(UTC) + OAUTH_STATE_TTL),
            )
        return state

    async def async_consume(self, state: str) -> bool:
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "DELETE FROM oauth_states WHERE state = %s RETURNING expires_at", (state,)
                )
            ).fetchone()
        return row is not None and row["expires_at"] > datetime.now(UTC)
