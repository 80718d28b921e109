"""Connector credentials: encrypted per tenant, set by admins with `/agent connect`, and
never in clear in the database, the logs or the audit log."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg.rows import dict_row
from structlog.testing import capture_logs

from connectors.credentials import Credential, CredentialCipher, CredentialStore
from core.db import Pool
from sandbox.hubspot_api import HubSpotEmulator
from tests.connectors.workspace import DB, Workspace, make_workspace, pool
from tests.support.stack import Stack

__all__ = ["pool"]  # the module-scoped pool fixture these tests share

TOKEN = f"pat-na1-{uuid.uuid4()}"
ADMIN = "U0ADMIN"  # a workspace admin in the sandbox workspace
REQUESTER = "U0REQUESTER"


@pytest.fixture(scope="module")
def hubspot() -> Iterator[HubSpotEmulator]:
    with HubSpotEmulator(token=TOKEN) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def new_workspace(
    hubspot: HubSpotEmulator, pool: Pool, database_url: str
) -> Iterator[Callable[[], Workspace]]:
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        yield make_workspace(conn, pool, database_url, hubspot_api_url=hubspot.api_url)


def _stored(db: DB, tenant_id: int, connector: str) -> bytes:
    row = db.execute(
        "SELECT ciphertext FROM connector_credentials WHERE tenant_id = %s AND connector = %s",
        (tenant_id, connector),
    ).fetchone()
    assert row is not None
    return bytes(row["ciphertext"])


def _audit_text(db: DB, tenant_id: int) -> str:
    rows = db.execute(
        "SELECT actor, action, subject, details::text AS details FROM audit_log WHERE tenant_id = %s",
        (tenant_id,),
    ).fetchall()
    return repr(rows)


def test_a_stored_token_reads_back_and_is_encrypted_at_rest(
    new_workspace: Callable[[], Workspace], db: DB
) -> None:
    """The token comes back for its tenant; the database holds only ciphertext."""
    space = new_workspace()
    space.connect("zendesk", TOKEN, account="acme")

    store = CredentialStore(space.pool, CredentialCipher.derive("connector-tests-signing-secret"))
    assert store.load(space.tenant_id, "zendesk") == Credential(TOKEN, "acme")
    assert TOKEN.encode() not in _stored(db, space.tenant_id, "zendesk")
    assert store.load(space.tenant_id, "hubspot") is None


def test_a_credential_copied_to_another_tenant_does_not_decrypt(
    new_workspace: Callable[[], Workspace], db: DB
) -> None:
    """The tenant and connector are bound into the ciphertext."""
    owner, other = new_workspace(), new_workspace()
    owner.connect("hubspot", TOKEN)
    db.execute(
        """INSERT INTO connector_credentials (tenant_id, connector, ciphertext, created_by, updated_by)
           VALUES (%s, 'hubspot', %s, 'mallory', 'mallory')""",
        (other.tenant_id, _stored(db, owner.tenant_id, "hubspot")),
    )

    store = CredentialStore(owner.pool, CredentialCipher.derive("connector-tests-signing-secret"))
    assert store.load(other.tenant_id, "hubspot") is None
    assert store.load(owner.tenant_id, "hubspot") == Credential(TOKEN)


def test_another_key_cannot_read_a_credential(new_workspace: Callable[[], Workspace]) -> None:
    """Changing CONNECTOR_CREDENTIALS_KEY means connecting again; nothing is guessed."""
    space = new_workspace()
    space.connect("hubspot", TOKEN)

    stranger = CredentialStore(space.pool, CredentialCipher.derive("some other secret"))
    assert stranger.load(space.tenant_id, "hubspot") is None


def test_a_token_never_reaches_the_logs_or_the_audit_log(
    new_workspace: Callable[[], Workspace], hubspot: HubSpotEmulator, db: DB
) -> None:
    """Connecting, using and failing with a token logs and audits it nowhere in clear."""
    space = new_workspace()
    contact = hubspot.crm.add("contacts", {"firstname": "Lou"})

    with capture_logs() as entries:
        space.connect("hubspot", TOKEN)
        read = space.call(
            "hubspot_read_record", {"record_type": "contact", "record_id": contact.id}
        )
        hubspot.fail_next(401)
        refused = space.call("hubspot_search_contacts", {"query": "Lou"})

    assert read["properties"] == {"firstname": "Lou"} and "error" in refused
    assert any(e["event"] == "connector.connected" for e in entries)
    assert TOKEN not in repr(entries)
    audit = _audit_text(db, space.tenant_id)
    assert "connector.connected" in audit and TOKEN not in audit


def test_an_admin_connects_hubspot_with_a_slash_command(stack: Stack, db: DB) -> None:
    """`/agent connect hubspot TOKEN` stores the token encrypted, audited, never echoed."""
    tenant = db.execute(
        "SELECT tenant_id FROM slack_installations WHERE team_id = %s",
        (stack.slack.workspace.team.id,),
    ).fetchone()
    assert tenant is not None
    tenant_id = tenant["tenant_id"]

    shown = stack.slack.run_slash_command(ADMIN, "C0GENERAL", "connect hubspot").response
    connected = stack.slack.run_slash_command(
        ADMIN, "C0GENERAL", f"connect hubspot {TOKEN}"
    ).response

    assert shown is not None and "Private Apps" in shown["text"]
    assert connected is not None and connected.get("response_type", "ephemeral") == "ephemeral"
    assert "HubSpot is connected" in connected["text"] and TOKEN not in connected["text"]
    # The listener derived its key from SLACK_SIGNING_SECRET, as no key of its own was set.
    cipher = CredentialCipher.derive(stack.env["SLACK_SIGNING_SECRET"])
    assert cipher.open(tenant_id, "hubspot", _stored(db, tenant_id, "hubspot")).token == TOKEN
    audit = _audit_text(db, tenant_id)
    assert "connector.connected" in audit and TOKEN not in audit
    listener_log = stack.serve.log_text()
    assert "connector.connected" in listener_log and TOKEN not in listener_log


def test_connect_refuses_non_admins_and_never_echoes_a_bad_credential(stack: Stack, db: DB) -> None:
    """Only admins may connect; words that are not a credential are not repeated back."""
    refused = stack.slack.run_slash_command(
        REQUESTER, "C0GENERAL", f"connect hubspot {TOKEN}"
    ).response
    malformed = stack.slack.run_slash_command(
        ADMIN, "C0GENERAL", f"connect zendesk {TOKEN}"
    ).response

    assert refused is not None and "Only workspace admins" in refused["text"]
    assert malformed is not None and "doesn't look like a Zendesk credential" in malformed["text"]
    assert TOKEN not in malformed["text"]
