"""Per-client limits of the SMTP listener: open connections, new connections and messages.

Kept in memory by the one listener process, keyed by the client's IP address. Token
buckets allow a burst up to the per-minute rate and refill continuously. With several
listener processes, each enforces its own limits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

SECONDS_PER_MINUTE = 60.0
MAX_TRACKED_CLIENTS = 10_000  # beyond this, idle clients' buckets are forgotten


@dataclass(frozen=True)
class ClientLimitConfig:
    max_concurrent: int  # open connections per client
    connections_per_minute: int
    messages_per_minute: int


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class _TokenBuckets:
    per_minute: int
    clock: Callable[[], float]
    buckets: dict[str, _Bucket] = field(default_factory=dict)

    def take(self, client: str) -> bool:
        now = self.clock()
        bucket = self.buckets.get(client)
        if bucket is None:
            if len(self.buckets) >= MAX_TRACKED_CLIENTS:
                self._forget_full(now)
            bucket = self.buckets[client] = _Bucket(float(self.per_minute), now)
        refill = (now - bucket.updated) * self.per_minute / SECONDS_PER_MINUTE
        bucket.tokens = min(float(self.per_minute), bucket.tokens + refill)
        bucket.updated = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def _forget_full(self, now: float) -> None:
        full_after = SECONDS_PER_MINUTE  # a minute idle refills any bucket
        for client in [c for c, b in self.buckets.items() if now - b.updated > full_after]:
            del self.buckets[client]


class ClientLimits:
    def __init__(
        self, config: ClientLimitConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self._open: dict[str, int] = {}
        self._connections = _TokenBuckets(config.connections_per_minute, clock)
        self._messages = _TokenBuckets(config.messages_per_minute, clock)

    def admit_connection(self, client: str) -> str | None:
        """None if the connection may proceed (then `release` it when it ends), else why not."""
        if self._open.get(client, 0) >= self.config.max_concurrent:
            return "too many connections from your address"
        if not self._connections.take(client):
            return "too many new connections from your address, slow down"
        self._open[client] = self._open.get(client, 0) + 1
        return None

    def release(self, client: str) -> None:
        remaining = self._open.get(client, 0) - 1
        if remaining > 0:
            self._open[client] = remaining
        else:
            self._open.pop(client, None)

    def admit_message(self, client: str) -> bool:
        return self._messages.take(client)
