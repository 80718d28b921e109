"""What a Slack HTTP request must pass before anything reads its body as data.

In this order, each cheaper than the next and none trusting the body:

1. The body arrives within `body_timeout` seconds (a client that stalls mid-body gets
   408 and its connection back, not a handler waiting for ever).
2. Its signature and timestamp verify against the signing secret, computed over the
   raw bytes (401 otherwise). Nothing parses an unsigned body, so a malformed one cannot
   reach a JSON or form parser and fail with a 500.
3. A slash command or interaction (the requests Slack never retries, and that change
   things at once: `/agent resume`, Approve) must not have been seen before: its
   (timestamp, signature) pair is recorded in Postgres for longer than the window in
   which Slack's timestamp check accepts it, so a captured request replayed within
   those five minutes is refused (401), by whichever listener process it reaches.

Events need no replay record: each carries an `event_id` that is unique in
`inbound_requests`, so a replayed event is stored once and answered once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from core.db import AsyncPool

TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
SIGNATURE_HEADER = "X-Slack-Signature"
MAX_CLOCK_SKEW = 5 * 60  # seconds between a request's timestamp and now, as Slack's SDKs allow
# Slack's verifier accepts a timestamp up to five minutes either side of now, so a pair
# can be valid for ten; kept a little longer for clocks that disagree.
SEEN_RETENTION_SECONDS = 11 * 60
PURGE_BATCH = 100  # expired rows each insert may delete, so the table stays small

# One statement: forget a few expired pairs, then record this one. The primary key makes
# it safe across listener processes: of two requests with the same pair, one inserts.
RECORD_SQL = """
WITH expired AS (
    DELETE FROM slack_seen_requests WHERE digest IN (
        SELECT digest FROM slack_seen_requests
         WHERE seen_at < now() - make_interval(secs => %(retention)s)
         LIMIT %(batch)s FOR UPDATE SKIP LOCKED)
)
INSERT INTO slack_seen_requests (digest) VALUES (%(digest)s)
ON CONFLICT (digest) DO NOTHING
RETURNING 1 AS first
"""

_COMMAND_OR_PAYLOAD = re.compile(rb"(?:^|&)(?:command|payload)=")

Refusal = Literal["slow_body", "unsigned", "replayed"]


@dataclass(frozen=True)
class Checked:
    """A request that passed: its raw body, or why it was refused."""

    body: bytes
    refused: Refusal | None = None

    def response(self) -> web.Response:
        assert self.refused is not None
        if self.refused == "slow_body":
            return web.Response(status=408, text="request body not received in time")
        if self.refused == "replayed":
            return web.Response(status=401, text="this request was already received")
        return web.Response(status=401, text="invalid request signature")


class RequestGuard:
    """The three checks above, for one listener process."""

    def __init__(self, signing_secret: str, pool: AsyncPool, *, body_timeout: float) -> None:
        self.secret = signing_secret.encode()
        self.pool = pool
        self.body_timeout = body_timeout

    async def check(self, request: web.Request) -> Checked:
        try:
            async with asyncio.timeout(self.body_timeout):
                body = await request.read()
        except TimeoutError:
            return Checked(b"", "slow_body")
        timestamp = request.headers.get(TIMESTAMP_HEADER, "")
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not self.signed(body, timestamp, signature):
            return Checked(body, "unsigned")
        if is_command_or_interaction(request.content_type, body) and not await self.first_sighting(
            timestamp, signature
        ):
            return Checked(body, "replayed")
        return Checked(body)

    def signed(self, body: bytes, timestamp: str, signature: str) -> bool:
        """Slack's scheme (`v0=` + HMAC-SHA256 of `v0:{timestamp}:{body}`), over the raw
        bytes: slack_sdk's verifier decodes the body first and raises on bytes that are
        not UTF-8, and on a timestamp that is not a number."""
        if not timestamp.isascii() or not timestamp.isdigit() or not signature:
            return False
        if abs(time.time() - int(timestamp)) > MAX_CLOCK_SKEW:
            return False
        base = b"v0:" + timestamp.encode() + b":" + body
        expected = "v0=" + hmac.new(self.secret, base, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))

    async def first_sighting(self, timestamp: str, signature: str) -> bool:
        """Whether this (timestamp, signature) pair is new; records it if so."""
        digest = hashlib.sha256(f"{timestamp}:{signature}".encode()).digest()
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                RECORD_SQL,
                {"digest": digest, "retention": SEEN_RETENTION_SECONDS, "batch": PURGE_BATCH},
            )
            return await cursor.fetchone() is not None


def is_command_or_interaction(content_type: str, body: bytes) -> bool:
    """A slash command (form with `command`) or an interaction (form with `payload`):
    told apart by field names only, without decoding the payload's JSON."""
    return content_type == "application/x-www-form-urlencoded" and bool(
        _COMMAND_OR_PAYLOAD.search(body)
    )
