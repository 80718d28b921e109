"""Slack bot tokens at rest: sealed like connector credentials, opened by their readers.

A token is sealed with connectors/credentials.py's scheme and key source (AES-GCM under
CONNECTOR_CREDENTIALS_KEY, or SLACK_SIGNING_SECRET when that is unset), with its tenant as
associated data: `slack_installations.bot_token_sealed` holds it and `bot_token` stays
empty. Every reader selects both columns and opens the token with `bot_token_of` (or
`with_bot_token`), which needs the key: `use_token_key(settings)` once per process, which
bot/cli.py does for every command. Rows written before tokens were sealed are sealed by
`seal_plaintext_tokens`, run by `chatops migrate` and by each worker at start. A changed
key makes sealed tokens unreadable: the workspace installs the app again (or, with
SLACK_BOT_TOKEN, the next start records it again).
"""

from __future__ import annotations

from typing import Any

import structlog
from cryptography.exceptions import InvalidTag
from psycopg import Connection

from connectors.credentials import Credential, CredentialCipher, cipher_from_settings
from core.settings import Settings

log = structlog.get_logger(__name__)

# The "connector" a bot token is sealed as: with the tenant id, the associated data, so a
# sealed token copied to another tenant (or read as a connector credential) never opens.
TOKEN_SLOT = "slack-bot"  # noqa: S105 - a label, not a secret

_token_cipher: CredentialCipher | None = None


class TokenKeyMissing(RuntimeError):
    """A sealed bot token was read in a process that was never given the key."""


class TokenUnreadable(RuntimeError):
    """A sealed bot token that this process's key does not open: the key changed
    (CONNECTOR_CREDENTIALS_KEY, or SLACK_SIGNING_SECRET when that is unset) since the
    workspace was installed. Installing the app again stores it under the current key."""


def use_token_key(settings: Settings) -> None:
    """Seal and open this process's bot tokens with the key the settings name."""
    use_token_cipher(cipher_from_settings(settings))


def use_token_cipher(cipher: CredentialCipher) -> None:
    global _token_cipher
    _token_cipher = cipher


def _cipher() -> CredentialCipher:
    if _token_cipher is None:
        raise TokenKeyMissing("use_token_key(settings) was not called in this process")
    return _token_cipher


def seal_bot_token(tenant_id: int, token: str) -> bytes:
    return _cipher().seal(tenant_id, TOKEN_SLOT, Credential(token=token))


def bot_token_of(row: dict[str, Any]) -> str | None:
    """The bot token of a row joined with its installation (`tenant_id`, and the
    installation's `bot_token_sealed` and `bot_token`); None when it has no installation
    (a LEFT JOIN found none). A row not sealed yet (written before tokens were sealed, and
    no worker has started since) still answers with its plaintext token."""
    sealed = row.get("bot_token_sealed")
    if sealed is None:
        return row.get("bot_token") or None
    try:
        return _cipher().open(row["tenant_id"], TOKEN_SLOT, bytes(sealed)).token
    except InvalidTag:
        raise TokenUnreadable(
            f"tenant {row['tenant_id']}'s bot token was sealed under another key"
        ) from None


def with_bot_token(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """`row` with its `bot_token` opened in place of the sealed columns, for readers that
    pass rows on as they are."""
    if row is None:
        return None
    opened = {k: v for k, v in row.items() if k != "bot_token_sealed"}
    opened["bot_token"] = bot_token_of(row)
    return opened


def seal_plaintext_tokens(conn: Connection[Any]) -> int:
    """Seal every installation whose token is still in clear and empty its plaintext
    column; returns how many. Each row is sealed in its own guarded UPDATE, so several
    processes doing this at once change each row once."""
    rows = conn.execute(
        """SELECT id, tenant_id, bot_token FROM slack_installations
           WHERE bot_token_sealed IS NULL AND bot_token <> ''"""
    ).fetchall()
    sealed = 0
    for row_id, tenant_id, token in (_as_tuple(r) for r in rows):
        updated = conn.execute(
            """UPDATE slack_installations SET bot_token_sealed = %s, bot_token = ''
               WHERE id = %s AND bot_token_sealed IS NULL AND bot_token = %s""",
            (seal_bot_token(tenant_id, token), row_id, token),
        )
        sealed += updated.rowcount
    if sealed:
        log.info("slack.bot_tokens_sealed", installations=sealed)
    return sealed


def _as_tuple(row: Any) -> tuple[int, int, str]:
    if isinstance(row, dict):
        return row["id"], row["tenant_id"], row["bot_token"]
    return row[0], row[1], row[2]
