"""Inbound mail's raw bytes sealed at rest (AES-GCM), the tenant and Message-ID as
associated data.

Here, beside the email connector, because both the SMTP listener's store
(bot/intake/email_store.py) and the reply tool (connectors/email/tools.py) seal and open
them, and connectors may not import the listener.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.settings import Settings

NONCE_BYTES = 12
RAW_KDF_INFO = b"chatops raw email v1"


@dataclass(frozen=True)
class RawMailCipher:
    """Seals a message's raw bytes for storage, under a key derived (HKDF) from the key
    connector credentials use; the tenant and Message-ID are the associated data."""

    key: bytes = field(repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> RawMailCipher:
        secret = settings.connector_credentials_key or settings.slack_signing_secret
        return cls.derive(secret.get_secret_value())

    @classmethod
    def derive(cls, secret: str) -> RawMailCipher:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=RAW_KDF_INFO).derive(
            secret.encode()
        )
        return cls(key)

    def seal(self, tenant_id: int, message_id: str, raw: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self.key).encrypt(nonce, raw, _raw_aad(tenant_id, message_id))

    def open(self, tenant_id: int, message_id: str, sealed: bytes) -> bytes:
        nonce, body = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        return AESGCM(self.key).decrypt(nonce, body, _raw_aad(tenant_id, message_id))


def _raw_aad(tenant_id: int, message_id: str) -> bytes:
    return f"{tenant_id}\x00{message_id}".encode()
