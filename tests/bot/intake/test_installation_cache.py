"""The workspace lookup before each ack is remembered for a few seconds: a workspace's
install, suspension or removal elsewhere shows within that time, an install here at once."""

from __future__ import annotations

import asyncio

from slack_sdk.oauth.installation_store import Installation

from bot.intake.installations import InstallationCache, PostgresInstallationStore
from core.db import open_async_pool
from testbed.markers import new_marker


def test_answers_are_kept_until_they_expire_or_an_install_here_clears_them(
    database_url: str,
) -> None:
    team = f"T{new_marker(10).upper()}"
    now = [0.0]

    async def scenario() -> list[bool]:
        pool = await open_async_pool(database_url, max_size=2)
        try:
            cache = InstallationCache(pool, seconds=10, clock=lambda: now[0])
            store = PostgresInstallationStore(pool, on_saved=cache.forget)
            seen = [await cache.find(team, None) is not None]  # unknown workspace
            install = Installation(
                app_id="A1",
                team_id=team,
                bot_token="xoxb-cache-test",
                bot_id="B1",
                bot_user_id="U0BOT",
                user_id="U0ADMIN",
            )
            await store.async_save(install)  # installed through this process
            seen.append(await cache.find(team, None) is not None)
            async with pool.connection() as conn:  # suspended by another process
                await conn.execute(
                    "UPDATE tenants SET status = 'suspended' WHERE slack_team_id = %s", (team,)
                )
            now[0] = 9.0
            seen.append(await cache.find(team, None) is not None)
            now[0] = 10.5
            seen.append(await cache.find(team, None) is not None)
            return seen
        finally:
            await pool.close()

    # unknown; installed here: known at once; suspended elsewhere: still served for
    # the cache's 10 s, refused after.
    assert asyncio.run(scenario()) == [False, True, True, False]
