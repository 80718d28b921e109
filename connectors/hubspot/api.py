"""The HubSpot CRM v3 calls the tools make, each a plain function of a RestClient."""

from __future__ import annotations

import html
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from connectors.credentials import Credential
from connectors.hubspot.labels import contact_name, stage_label
from connectors.rest import RestClient, paginate
from connectors.sessions import Service

OBJECTS = "/crm/v3/objects"
PAGE_SIZE = 100  # HubSpot's search allows up to 200 per page; 100 keeps answers small
NOTE_TO_CONTACT = 202  # HubSpot-defined association type id: note -> contact
PROPERTIES = {
    "contacts": [
        "firstname",
        "lastname",
        "email",
        "phone",
        "company",
        "jobtitle",
        "lifecyclestage",
    ],
    "companies": ["name", "domain", "industry", "city", "country", "numberofemployees"],
    "deals": ["dealname", "amount", "dealstage", "pipeline", "closedate"],
}
RECORD_KIND = {"contacts": "contact", "companies": "company", "deals": "deal"}
ASSOCIATED = {
    "contacts": ["companies", "deals"],
    "companies": ["contacts", "deals"],
    "deals": ["contacts", "companies"],
}


def hubspot_service(base_url: str) -> Service:
    def headers(credential: Credential) -> Mapping[str, str]:
        return {"Authorization": f"Bearer {credential.token}"}

    return Service("hubspot", "HubSpot", lambda _credential: base_url, headers)


def search_contacts(api: RestClient, query: str, limit: int) -> list[dict[str, Any]]:
    def page(cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        body: dict[str, Any] = {
            "query": query,
            "limit": min(limit, PAGE_SIZE),
            "properties": PROPERTIES["contacts"],
        }
        if cursor is not None:
            body["after"] = cursor
        # A search is a POST that changes nothing: safe to retry.
        found = api.request("POST", f"{OBJECTS}/contacts/search", json=body, idempotent=True)
        return found.get("results") or [], _next_after(found)

    return [_record(r, "contacts") for r in paginate(page, limit=limit)]


def read_record(api: RestClient, object_type: str, record_id: str) -> dict[str, Any]:
    found = api.get(
        f"{OBJECTS}/{object_type}/{record_id}",
        params={
            "properties": ",".join(PROPERTIES[object_type]),
            "associations": ",".join(ASSOCIATED[object_type]),
        },
    )
    # The record says what it is: its id beside a contact's or a deal's ids is otherwise
    # just a number (the 1.5B model moved "deal 101", the contact it had read).
    record = {"type": RECORD_KIND[object_type], **_record(found, object_type)}
    record["associations"] = {
        kind: [link["id"] for link in (links or {}).get("results") or []]
        for kind, links in (found.get("associations") or {}).items()
    }
    return record


def note_body(text: str, key: str) -> str:
    """The note as HubSpot stores it (HTML); the reference line is how a retry finds it."""
    paragraphs = "".join(f"<p>{html.escape(line)}</p>" for line in text.splitlines() if line)
    return f"{paragraphs}<p><em>Added by the chatops assistant ({note_reference(key)})</em></p>"


def note_reference(key: str) -> str:
    return f"ref {key}"


def create_contact_note(api: RestClient, contact_id: str, text: str, key: str) -> dict[str, Any]:
    created = api.request(
        "POST",
        f"{OBJECTS}/notes",
        json={
            "properties": {
                "hs_timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "hs_note_body": note_body(text, key),
            },
            "associations": [
                {
                    "to": {"id": contact_id},
                    "types": [
                        {
                            "associationCategory": "HUBSPOT_DEFINED",
                            "associationTypeId": NOTE_TO_CONTACT,
                        }
                    ],
                }
            ],
        },
        idempotent=False,  # a retried create would add a second note
    )
    return {"note_id": created["id"], "contact_id": contact_id}


def find_contact_note(api: RestClient, contact_id: str, key: str) -> dict[str, Any] | None:
    """The note an earlier attempt with this key created on the contact, if any.

    Reads the contact's associations rather than searching: HubSpot's search index lags
    writes by seconds, associations do not.
    """

    def page(cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        params = {"limit": 500} | ({"after": cursor} if cursor else {})
        found = api.get(f"{OBJECTS}/contacts/{contact_id}/associations/notes", params=params)
        return found.get("results") or [], _next_after(found)

    note_ids = [link["id"] for link in paginate(page, limit=10_000)]
    reference = note_reference(key)
    for start in range(0, len(note_ids), PAGE_SIZE):
        batch = api.request(
            "POST",
            f"{OBJECTS}/notes/batch/read",
            json={
                "properties": ["hs_note_body"],
                "inputs": [{"id": i} for i in note_ids[start : start + PAGE_SIZE]],
            },
            idempotent=True,
        )
        for note in batch.get("results") or []:
            if reference in str((note.get("properties") or {}).get("hs_note_body") or ""):
                return {"note_id": note["id"], "contact_id": contact_id}
    return None


def set_deal_stage(api: RestClient, deal_id: str, stage: str) -> dict[str, Any]:
    updated = api.request(
        "PATCH",
        f"{OBJECTS}/deals/{deal_id}",
        json={"properties": {"dealstage": stage}},
        idempotent=True,  # setting the same stage twice leaves the deal as once
    )
    return {
        "deal_id": updated["id"],
        "dealstage": (updated.get("properties") or {}).get("dealstage"),
    }


def deal_stage(api: RestClient, deal_id: str) -> str | None:
    found = api.get(f"{OBJECTS}/deals/{deal_id}", params={"properties": "dealstage"})
    stage = (found.get("properties") or {}).get("dealstage")
    return str(stage) if stage is not None else None


def _record(found: dict[str, Any], object_type: str) -> dict[str, Any]:
    # Only the properties we asked for, and only those with a value: HubSpot adds its
    # own bookkeeping ones (hs_object_id...), which would only cost the model tokens.
    properties = {
        name: value
        for name, value in (found.get("properties") or {}).items()
        if name in PROPERTIES[object_type] and value not in (None, "")
    }
    return {"id": found.get("id"), **_readable(properties), "properties": properties}


def _readable(properties: dict[str, Any]) -> dict[str, str]:
    """A contact's whole name and a deal's stage as HubSpot's screens show them, beside
    the raw properties. Given "firstname": "Hank", "lastname": "Scorpio", the 1.5B model
    answered that "Globex is our contact at Globex", and it told people the renewal was
    "in contractsent stage"."""
    readable = {}
    if properties.get("firstname") or properties.get("lastname"):
        readable["name"] = contact_name(properties)
    if properties.get("dealstage"):
        readable["stage"] = stage_label(str(properties["dealstage"]))
    return readable


def _next_after(page: dict[str, Any]) -> str | None:
    after = ((page.get("paging") or {}).get("next") or {}).get("after")
    return str(after) if after is not None else None
