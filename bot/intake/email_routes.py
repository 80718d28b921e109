"""Recipient lookups of the SMTP listener, remembered for a short while.

Every RCPT TO needs the tenant of its address; a relay delivering a burst of mail to one
inbox would otherwise ask Postgres the same question hundreds of times a second. Answers,
including "no such inbox", are kept for ROUTE_CACHE_SECONDS, so a new or removed inbox
takes effect within that time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from connectors.email.inboxes import InboxRoute, normalize_address, route_recipient
from core.db import AsyncPool

ROUTE_CACHE_SECONDS = 30.0
MAX_CACHED = 10_000  # addresses; beyond this the cache starts afresh


class RouteCache:
    def __init__(
        self, pool: AsyncPool, *, timeout: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.pool = pool
        self.timeout = timeout
        self.clock = clock
        self._known: dict[str, tuple[float, InboxRoute | None]] = {}

    async def route(self, address: str) -> InboxRoute | None:
        """The inbox `address` reaches, or None; raises if Postgres cannot be asked."""
        key = normalize_address(address)
        now = self.clock()
        cached = self._known.get(key)
        if cached is not None and now - cached[0] < ROUTE_CACHE_SECONDS:
            return cached[1]
        async with asyncio.timeout(self.timeout):
            async with self.pool.connection(timeout=self.timeout) as conn:
                route = await route_recipient(conn, key)
        if len(self._known) >= MAX_CACHED:
            self._known.clear()
        self._known[key] = (now, route)
        return route
