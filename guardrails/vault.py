"""The placeholder vault: which real value each <EMAIL_1> of a conversation stands for.

Rows live in Postgres (`pii_vault`), scoped by tenant and conversation, because the
model call and the approved action run in different processes. Values are encrypted
with AES-GCM under a key from settings, with the tenant, conversation and placeholder as
associated data, so a row copied elsewhere does not decrypt; the same value gets the
same placeholder through a keyed HMAC digest, never a plain hash.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import timedelta

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.db import Pool
from guardrails.entities import CARD, EMAIL, IBAN, LABELS, PHONE, SSN

log = structlog.get_logger(__name__)

KEY_BYTES = 32  # AES-256 and HMAC-SHA256
NONCE_BYTES = 12  # AES-GCM's standard nonce
KDF_INFO = b"chatops guardrails placeholder vault v1"
# High bits of the advisory lock key: keeps vault locks apart from other advisory locks.
LOCK_NAMESPACE = "pii_vault"

PLACEHOLDER = re.compile(r"<([A-Z]+)_(\d+)>")


@dataclass(frozen=True)
class VaultKeys:
    encryption: bytes
    digest: bytes

    @classmethod
    def derive(cls, secret: str) -> VaultKeys:
        """Two independent keys from one secret (GUARDRAILS_VAULT_KEY)."""
        material = HKDF(
            algorithm=hashes.SHA256(), length=2 * KEY_BYTES, salt=None, info=KDF_INFO
        ).derive(secret.encode())
        return cls(encryption=material[:KEY_BYTES], digest=material[KEY_BYTES:])


def normalise(entity: str, value: str) -> str:
    """The form two mentions of the same value share: "A@X.com" is "a@x.com"."""
    if entity == EMAIL:
        return value.strip().lower()
    if entity in (PHONE, CARD, SSN):
        return re.sub(r"[^\d+]", "", value)
    if entity == IBAN:
        return re.sub(r"\s", "", value).upper()
    return value.strip()


@dataclass(frozen=True)
class PlaceholderVault:
    pool: Pool
    keys: VaultKeys

    def placeholders_for(
        self, tenant_id: int, conversation_key: str, items: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], str]:
        """The placeholder of each (entity, value), creating the missing ones; a value
        already seen in this conversation keeps its placeholder."""
        if not items:
            return {}
        wanted = {(e, v): self._digest(e, v) for e, v in dict.fromkeys(items)}
        with self.pool.connection() as conn, conn.transaction():
            # Two workers numbering the same conversation at once would both pick
            # <EMAIL_2>: one at a time per conversation.
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                (f"{LOCK_NAMESPACE}:{tenant_id}:{conversation_key}",),
            )
            rows = conn.execute(
                """SELECT placeholder, value_digest FROM pii_vault
                   WHERE tenant_id = %s AND conversation_key = %s""",
                (tenant_id, conversation_key),
            ).fetchall()
            by_digest = {bytes(r["value_digest"]): r["placeholder"] for r in rows}
            counts: dict[str, int] = {}
            for r in rows:
                match = PLACEHOLDER.fullmatch(r["placeholder"])
                if match:
                    label, number = match.group(1), int(match.group(2))
                    counts[label] = max(counts.get(label, 0), number)
            result = {}
            for (entity, value), digest in wanted.items():
                placeholder = by_digest.get(digest)
                if placeholder is None:
                    label = LABELS[entity]
                    counts[label] = counts.get(label, 0) + 1
                    placeholder = f"<{label}_{counts[label]}>"
                    conn.execute(
                        """INSERT INTO pii_vault (tenant_id, conversation_key, placeholder,
                             entity, value_digest, value_ciphertext)
                           VALUES (%s, %s, %s, %s, %s, %s)""",
                        (
                            tenant_id,
                            conversation_key,
                            placeholder,
                            entity,
                            digest,
                            self._encrypt(tenant_id, conversation_key, placeholder, value),
                        ),
                    )
                    by_digest[digest] = placeholder
                result[(entity, value)] = placeholder
        return result

    def values_for(
        self, tenant_id: int, conversation_key: str, placeholders: Collection[str]
    ) -> dict[str, str]:
        """The real value of each placeholder this conversation has; unknown ones are
        left out (a placeholder the model invented, or another conversation's)."""
        if not placeholders:
            return {}
        with self.pool.connection() as conn:
            rows = conn.execute(
                """SELECT placeholder, value_ciphertext FROM pii_vault
                   WHERE tenant_id = %s AND conversation_key = %s AND placeholder = ANY(%s)""",
                (tenant_id, conversation_key, list(placeholders)),
            ).fetchall()
        values = {}
        for r in rows:
            try:
                values[r["placeholder"]] = self._decrypt(
                    tenant_id, conversation_key, r["placeholder"], bytes(r["value_ciphertext"])
                )
            except InvalidTag:
                # Written under another key (GUARDRAILS_VAULT_KEY changed): the value is
                # gone, and the placeholder stays unresolved rather than guessed.
                log.warning("guardrails.vault_undecryptable", placeholder=r["placeholder"])
        return values

    def purge(self, older_than: timedelta) -> int:
        """Forget placeholders older than `older_than`, across tenants (maintenance)."""
        with self.pool.connection() as conn:
            cursor = conn.execute(
                "DELETE FROM pii_vault WHERE created_at < now() - %s", (older_than,)
            )
            return cursor.rowcount

    def _digest(self, entity: str, value: str) -> bytes:
        message = f"{entity}\x00{normalise(entity, value)}".encode()
        return hmac.new(self.keys.digest, message, hashlib.sha256).digest()

    def _encrypt(
        self, tenant_id: int, conversation_key: str, placeholder: str, value: str
    ) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        aad = _associated_data(tenant_id, conversation_key, placeholder)
        return nonce + AESGCM(self.keys.encryption).encrypt(nonce, value.encode(), aad)

    def _decrypt(self, tenant_id: int, conversation_key: str, placeholder: str, blob: bytes) -> str:
        aad = _associated_data(tenant_id, conversation_key, placeholder)
        nonce, ciphertext = blob[:NONCE_BYTES], blob[NONCE_BYTES:]
        return AESGCM(self.keys.encryption).decrypt(nonce, ciphertext, aad).decode()


def _associated_data(tenant_id: int, conversation_key: str, placeholder: str) -> bytes:
    return f"{tenant_id}\x00{conversation_key}\x00{placeholder}".encode()
