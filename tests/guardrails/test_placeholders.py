"""Reversible placeholders: the model sees <EMAIL_1>, approved actions get the real value.

Against the session's Postgres: the vault rows are what a second process (the approval
handler) reads, so the restore side is always a freshly built Guardrails.
"""

from __future__ import annotations

import psycopg

from core.db import Pool
from guardrails.facade import Guardrails, build_guardrails
from guardrails.policy import PiiPolicy, TenantPolicy
from tests.guardrails.conftest import make_tenant, set_policy, settings_for

MESSAGE = (
    "Please email ana.lopez@example.com (cc Ana.Lopez@Example.com) about the refund for "
    "card 4111 1111 1111 1111, and call +1 415 555 0132."
)


def other_process(database_url: str, pool: Pool, **overrides: object) -> Guardrails:
    return build_guardrails(settings_for(database_url, **overrides), pool)


def test_the_model_sees_placeholders_and_the_same_value_keeps_its_number(
    guardrails: Guardrails, tenant: int
) -> None:
    """Emails and phones become numbered placeholders (one per value, whatever its case),
    and the card number is masked for good."""
    screened = guardrails.screen_inbound(tenant, "C1:100.1", MESSAGE)
    assert screened.text_for_llm == (
        "Please email <EMAIL_1> (cc <EMAIL_1>) about the refund for card <CARD>, "
        "and call <PHONE_1>."
    )
    assert dict(screened.pii_hidden) == {"EMAIL_ADDRESS": 2, "CREDIT_CARD": 1, "PHONE_NUMBER": 1}
    later = guardrails.screen_inbound(
        tenant, "C1:100.1", "Also bo@example.org and ana.lopez@example.com"
    )
    assert later.text_for_llm == "Also <EMAIL_2> and <EMAIL_1>"


def test_an_approved_action_in_another_process_gets_the_real_values(
    guardrails: Guardrails, database_url: str, pool: Pool, tenant: int
) -> None:
    """Tool arguments written with placeholders are restored by a separately built
    Guardrails, as the approval handler would; unknown placeholders stay as they are."""
    guardrails.screen_inbound(tenant, "C1:200.1", MESSAGE)
    approver = other_process(database_url, pool)
    arguments = {"to": ["<EMAIL_1>"], "body": "Hi, we called <PHONE_1> about <CARD> <EMAIL_9>"}
    assert approver.restore(tenant, "C1:200.1", arguments) == {
        "to": ["ana.lopez@example.com"],
        "body": "Hi, we called +1 415 555 0132 about <CARD> <EMAIL_9>",
    }


def test_placeholders_do_not_cross_conversations_or_tenants(
    guardrails: Guardrails, pool: Pool, tenant: int
) -> None:
    """<EMAIL_1> of one conversation means nothing in another, or in another tenant's
    conversation with the same key."""
    guardrails.screen_inbound(tenant, "C1:300.1", MESSAGE)
    stranger = make_tenant(pool)
    assert guardrails.restore(tenant, "C1:300.2", "to <EMAIL_1>") == "to <EMAIL_1>"
    assert guardrails.restore(stranger, "C1:300.1", "to <EMAIL_1>") == "to <EMAIL_1>"


def test_values_are_encrypted_at_rest(
    guardrails: Guardrails, database_url: str, tenant: int
) -> None:
    """The vault table holds no readable value or plain hash, and a process with another
    key cannot read the values back."""
    guardrails.screen_inbound(tenant, "C1:400.1", MESSAGE)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT value_ciphertext, value_digest FROM pii_vault WHERE tenant_id = %s",
            (tenant,),
        ).fetchall()
    assert len(rows) == 2
    stored = b"".join(bytes(c) + bytes(d) for c, d in rows)
    assert b"ana.lopez" not in stored and b"555" not in stored


def test_a_changed_key_leaves_placeholders_unresolved(
    guardrails: Guardrails, database_url: str, pool: Pool, tenant: int
) -> None:
    """After GUARDRAILS_VAULT_KEY changes, old placeholders are not restored to anything."""
    guardrails.screen_inbound(tenant, "C1:500.1", MESSAGE)
    rotated = other_process(database_url, pool, guardrails_vault_key="a different key entirely")
    assert rotated.restore(tenant, "C1:500.1", "to <EMAIL_1>") == "to <EMAIL_1>"


def test_mask_mode_stores_nothing_and_approvers_see_partial_values(
    guardrails: Guardrails, database_url: str, tenant: int
) -> None:
    """With masking, nothing enters the vault; with placeholders, the default approver
    view shows partly masked values."""
    set_policy(guardrails, tenant, TenantPolicy(pii=PiiPolicy(mode="mask")))
    masked = guardrails.screen_inbound(tenant, "C1:600.1", MESSAGE)
    assert masked.text_for_llm.startswith("Please email <EMAIL> (cc <EMAIL>)")
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pii_vault WHERE tenant_id = %s", (tenant,)
        ).fetchone()
    assert row == (0,)

    set_policy(guardrails, tenant, TenantPolicy())
    guardrails.screen_inbound(tenant, "C1:600.2", MESSAGE)
    view = guardrails.for_approver(tenant, "C1:600.2", "Send to <EMAIL_1>, call <PHONE_1>")
    assert view.text == "Send to a***@example.com, call +* *** *** 0132"
    assert guardrails.approver_payload(tenant, "C1:600.2", {"to": ["<EMAIL_1>"], "n": 2}) == {
        "to": ["a***@example.com"],
        "n": 2,
    }
    set_policy(guardrails, tenant, TenantPolicy(pii=PiiPolicy(approver_view="real")))
    real = guardrails.for_approver(tenant, "C1:600.2", "Send to <EMAIL_1>")
    assert real.text == "Send to ana.lopez@example.com"


def test_replies_in_the_same_conversation_get_their_values_back(
    guardrails: Guardrails, tenant: int
) -> None:
    """A draft the model wrote with placeholders is posted with the real values."""
    guardrails.screen_inbound(tenant, "C1:700.1", MESSAGE)
    draft = guardrails.screen_draft(tenant, "C1:700.1", "I'll email <EMAIL_1> today.")
    assert draft.text_for_people == "I'll email ana.lopez@example.com today."
    assert draft.action == "allow"


def test_a_text_in_clear_is_hidden_from_approvers_and_restored_for_the_call(
    guardrails: Guardrails, tenant: int
) -> None:
    """An email the agent wrote with the customer's real name and address: the known
    values (the address in any case, the name as a whole word) and what the detector
    finds become the conversation's placeholders, shown partly masked and restored for
    the approved call; nothing changes where approvers see real values."""
    guardrails.screen_inbound(tenant, "C1:800.1", MESSAGE)  # ana.lopez@... is <EMAIL_1>
    known = [("EMAIL_ADDRESS", "ana.lopez@example.com"), ("PERSON", "Ana")]
    text = "Hello Ana,\n\nAlso: ANA.LOPEZ@example.com works, and so does bo@example.org. Anagram."
    hidden = guardrails.hide_from_approvers(tenant, "C1:800.1", {"text": text}, known)
    assert hidden["text"] == (
        "Hello <PERSON_1>,\n\nAlso: <EMAIL_1> works, and so does <EMAIL_2>. Anagram."
    )
    assert guardrails.approver_payload(tenant, "C1:800.1", hidden)["text"] == (
        "Hello A.,\n\nAlso: a***@example.com works, and so does b***@example.org. Anagram."
    )
    restored = guardrails.restore(tenant, "C1:800.1", hidden["text"])
    assert restored == (
        "Hello Ana,\n\nAlso: ana.lopez@example.com works, and so does bo@example.org. Anagram."
    )
    set_policy(guardrails, tenant, TenantPolicy(pii=PiiPolicy(approver_view="real")))
    assert guardrails.hide_from_approvers(tenant, "C1:800.1", text, known) == text
    set_policy(guardrails, tenant, TenantPolicy(pii=PiiPolicy(mode="off")))
    assert guardrails.hide_from_approvers(tenant, "C1:800.1", text, known) == text
