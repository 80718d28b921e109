"""Per-tenant connector credentials (API tokens), encrypted at rest.

A credential is sealed with AES-GCM under a key derived (HKDF) from
CONNECTOR_CREDENTIALS_KEY, or from SLACK_SIGNING_SECRET when that is unset, as the PII
vault does. The tenant and connector are the associated data, so a row copied to another
tenant or connector does not decrypt. Storing one writes an audit row that names the
connector and never the token; nothing here logs a token.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.db import AsyncPool, Pool
from core.settings import Settings
from core.store import audit

log = structlog.get_logger(__name__)

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # AES-GCM's standard nonce
KDF_INFO = b"chatops connector credentials v1"

UPSERT = """INSERT INTO connector_credentials
                (tenant_id, connector, ciphertext, created_by, updated_by)
            VALUES (%s, %s, %s, %s, %s)
            ON CONFLICT (tenant_id, connector) DO UPDATE SET ciphertext = EXCLUDED.ciphertext,
              updated_by = EXCLUDED.updated_by, updated_at = now()"""


@dataclass(frozen=True)
class Credential:
    """What a connector needs to call its API for one tenant."""

    token: str = field(repr=False)
    # Which account of a multi-account service (a Zendesk subdomain); None for others.
    account: str | None = None


@dataclass(frozen=True)
class CredentialCipher:
    key: bytes = field(repr=False)

    @classmethod
    def derive(cls, secret: str) -> CredentialCipher:
        key = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=KDF_INFO).derive(
            secret.encode()
        )
        return cls(key)

    def seal(self, tenant_id: int, connector: str, credential: Credential) -> bytes:
        plain = json.dumps({"token": credential.token, "account": credential.account})
        nonce = os.urandom(NONCE_BYTES)
        aad = _associated_data(tenant_id, connector)
        return nonce + AESGCM(self.key).encrypt(nonce, plain.encode(), aad)

    def open(self, tenant_id: int, connector: str, blob: bytes) -> Credential:
        """Raises InvalidTag when the blob was sealed under another key, tenant or connector."""
        nonce, sealed = blob[:NONCE_BYTES], blob[NONCE_BYTES:]
        plain = AESGCM(self.key).decrypt(nonce, sealed, _associated_data(tenant_id, connector))
        values = json.loads(plain)
        return Credential(token=values["token"], account=values.get("account"))


def cipher_from_settings(settings: Settings) -> CredentialCipher:
    secret = settings.connector_credentials_key or settings.slack_signing_secret
    return CredentialCipher.derive(secret.get_secret_value())


@dataclass(frozen=True)
class CredentialStore:
    pool: Pool
    cipher: CredentialCipher

    def load(self, tenant_id: int, connector: str) -> Credential | None:
        """The tenant's credential for `connector`; None if it never connected it, or if
        it was stored under a key that has since changed (it must be connected again)."""
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT ciphertext FROM connector_credentials WHERE tenant_id = %s AND connector = %s",
                (tenant_id, connector),
            ).fetchone()
        if row is None:
            return None
        try:
            return self.cipher.open(tenant_id, connector, bytes(row["ciphertext"]))
        except InvalidTag:
            log.warning("connector.credential_undecryptable", connector=connector)
            return None

    def store(self, tenant_id: int, connector: str, credential: Credential, actor: str) -> None:
        sealed = self.cipher.seal(tenant_id, connector, credential)
        with self.pool.connection() as conn, conn.transaction():
            conn.execute(UPSERT, (tenant_id, connector, sealed, actor, actor))
            audit.append(conn, _connected_entry(tenant_id, connector, credential, actor))
        log.info("connector.connected", connector=connector)


async def store_async(
    pool: AsyncPool,
    cipher: CredentialCipher,
    tenant_id: int,
    connector: str,
    credential: Credential,
    actor: str,
) -> None:
    """`store`, for the listener's `/agent connect` (an asyncio process)."""
    sealed = cipher.seal(tenant_id, connector, credential)
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(UPSERT, (tenant_id, connector, sealed, actor, actor))
        await audit.append_async(conn, _connected_entry(tenant_id, connector, credential, actor))
    log.info("connector.connected", connector=connector)


def _connected_entry(
    tenant_id: int, connector: str, credential: Credential, actor: str
) -> audit.Entry:
    # The account (a subdomain) is not secret and helps an admin read the log; the token
    # never leaves this module in clear.
    return audit.Entry(
        tenant_id=tenant_id,
        actor=actor,
        action="connector.connected",
        subject=connector,
        details={"via": "/agent", "account": credential.account},
    )


def _associated_data(tenant_id: int, connector: str) -> bytes:
    return f"{tenant_id}\x00{connector}".encode()
