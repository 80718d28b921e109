"""HubSpot tools against the HubSpot emulator over real HTTP: reads run at once and explain
their failures; writes wait for approval and, once approved, happen exactly once."""

from __future__ import annotations

import json
import time

import pytest

from connectors.hubspot import api
from connectors.rest import ConnectorError, RestClient, new_http_client
from review.messages import approval_message
from sandbox.hubspot_api import HubSpotEmulator
from testbed.markers import new_marker
from tests.connectors.hubspot.conftest import TOKEN
from tests.connectors.workspace import Workspace


def _client(hubspot: HubSpotEmulator) -> RestClient:
    return RestClient(
        http=new_http_client(),
        service="HubSpot",
        connector="hubspot",
        base_url=hubspot.api_url,
        auth_headers={"Authorization": f"Bearer {TOKEN}"},
    )


def _searches(hubspot: HubSpotEmulator) -> list[dict[str, object]]:
    return [r.body for r in hubspot.requests if r.path.endswith("/search")]


def test_contact_search_follows_paging_cursors(hubspot: HubSpotEmulator) -> None:
    """A search larger than one page follows `paging.next.after` until it has enough."""
    company = f"Acme-{new_marker(6)}"
    for n in range(130):
        hubspot.crm.add("contacts", {"firstname": f"P{n}", "company": company})
    hubspot.reset()

    found = api.search_contacts(_client(hubspot), company, limit=120)

    assert len(found) == 120
    assert len({c["id"] for c in found}) == 120
    assert [s.get("after") for s in _searches(hubspot)] == [None, "100"]


def test_search_tool_finds_a_contact(workspace: Workspace, hubspot: HubSpotEmulator) -> None:
    """The search tool returns matching contacts with their ids, whole names and
    properties."""
    email = f"dana.{new_marker(6)}@customer.example"
    contact = hubspot.crm.add("contacts", {"firstname": "Dana", "lastname": "Ito", "email": email})

    result = workspace.call("hubspot_search_contacts", {"query": email})

    assert result == {
        "contacts": [
            {
                "id": contact.id,
                "name": "Dana Ito",
                "properties": {"firstname": "Dana", "lastname": "Ito", "email": email},
            }
        ]
    }


def test_a_deal_read_names_its_stage_as_hubspot_shows_it(
    workspace: Workspace, hubspot: HubSpotEmulator
) -> None:
    """Shown only "dealstage": "contractsent", the 1.5B model told people the renewal
    was "in contractsent stage": a deal's read also gives the stage's label."""
    deal = hubspot.crm.add("deals", {"dealname": "Globex renewal", "dealstage": "contractsent"})

    result = workspace.call("hubspot_read_record", {"record_type": "deal", "record_id": deal.id})

    assert result["stage"] == "Contract sent"
    assert result["properties"]["dealstage"] == "contractsent"


def test_reading_a_contact_shows_its_associations(
    workspace: Workspace, hubspot: HubSpotEmulator
) -> None:
    """Reading a contact gives its properties and the ids of its company and deals."""
    company = hubspot.crm.add("companies", {"name": "Globex", "domain": "globex.example"})
    contact = hubspot.crm.add(
        "contacts",
        {"firstname": "Hank", "email": "hank@globex.example"},
        {"companies": [company.id]},
    )
    deal = hubspot.crm.add(
        "deals",
        {"dealname": "Globex renewal", "dealstage": "contractsent"},
        {"contacts": [contact.id]},
    )

    result = workspace.call(
        "hubspot_read_record", {"record_type": "contact", "record_id": contact.id}
    )

    assert result["properties"] == {"firstname": "Hank", "email": "hank@globex.example"}
    assert result["associations"] == {"companies": [company.id], "deals": [deal.id]}


def test_a_rate_limited_read_waits_for_retry_after(
    workspace: Workspace, hubspot: HubSpotEmulator
) -> None:
    """A 429 is waited out for as long as its Retry-After says, then the read succeeds."""
    contact = hubspot.crm.add("contacts", {"firstname": "Rita"})
    hubspot.fail_next(429, retry_after=1)

    started = time.monotonic()
    result = workspace.call(
        "hubspot_read_record", {"record_type": "contact", "record_id": contact.id}
    )

    assert time.monotonic() - started >= 1.0
    assert result["properties"] == {"firstname": "Rita"}
    assert [r.path for r in hubspot.requests] == [f"/crm/v3/objects/contacts/{contact.id}"] * 2


def test_a_read_is_retried_after_a_server_error(
    workspace: Workspace, hubspot: HubSpotEmulator
) -> None:
    """A 503 on a read is retried with backoff and the read succeeds."""
    contact = hubspot.crm.add("contacts", {"firstname": "Sam"})
    hubspot.fail_next(503)

    result = workspace.call(
        "hubspot_read_record", {"record_type": "contact", "record_id": contact.id}
    )

    assert result["properties"] == {"firstname": "Sam"}
    assert len(hubspot.requests) == 2


def test_an_expired_token_becomes_a_clear_tool_error(
    workspace: Workspace, hubspot: HubSpotEmulator
) -> None:
    """A 401 reaches the agent as a sentence telling an admin to reconnect."""
    hubspot.fail_next(401)

    result = workspace.call("hubspot_search_contacts", {"query": "anyone"})

    assert result == {
        "error": "HubSpot rejected the token: ask an admin to reconnect with "
        "`/agent connect hubspot`"
    }


def test_a_missing_record_is_not_found(workspace: Workspace) -> None:
    """Reading a record that does not exist says so, in words."""
    result = workspace.call("hubspot_read_record", {"record_type": "deal", "record_id": "999999"})

    assert result == {"error": "HubSpot: not found"}


def test_a_tenant_without_hubspot_is_told_how_to_connect(
    new_workspace: object, hubspot: HubSpotEmulator
) -> None:
    """Before an admin connects HubSpot, its tools say so and call nothing."""
    assert callable(new_workspace)
    hubspot.reset()
    space = new_workspace()

    result = space.call("hubspot_search_contacts", {"query": "anyone"})

    assert "`/agent connect hubspot`" in result["error"]
    assert hubspot.requests == []


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("hubspot_add_contact_note", {"contact_id": "101", "text": "Called about renewal"}),
        ("hubspot_update_deal_stage", {"deal_id": "101", "stage": "closedwon"}),
    ],
)
def test_a_write_becomes_a_pending_action(
    workspace: Workspace, hubspot: HubSpotEmulator, tool: str, arguments: dict[str, str]
) -> None:
    """A write tool changes nothing in HubSpot from the Act step: it only reads what its
    card will show, and waits for approval."""
    told, action = workspace.propose(tool, arguments)

    assert told.startswith("Waiting for approval, not done yet: action ")
    assert action is not None and action["status"] == "pending" and action["tool"] == tool
    assert [r.method for r in hubspot.requests] == ["GET"]


def test_an_approved_note_is_added_once_even_when_retried(
    workspace: Workspace, hubspot: HubSpotEmulator
) -> None:
    """A note whose create timed out after HubSpot kept it is found on retry, not re-added."""
    contact = hubspot.crm.add("contacts", {"firstname": "Olga"})
    action = workspace.propose_and_approve(
        "hubspot_add_contact_note", {"contact_id": contact.id, "text": "Wants a quote for 50 seats"}
    )
    hubspot.fail_next(503, after_commit=True)

    with pytest.raises(ConnectorError):
        workspace.execute(action["id"])  # the job fails; Dramatiq would retry it
    executed = workspace.execute(action["id"])

    notes = hubspot.crm.associated("contacts", contact.id, "notes")
    assert len(notes) == 1
    assert executed["status"] == "executed"
    assert executed["result"] == {"note_id": notes[0], "contact_id": contact.id}
    body = hubspot.crm.get("notes", notes[0]).properties["hs_note_body"]
    assert body is not None and "Wants a quote for 50 seats" in body


@pytest.mark.parametrize("written", ["closedwon", "closed_won", "Closed won", "CLOSED-WON"])
def test_an_approved_deal_stage_change_is_made(
    workspace: Workspace, hubspot: HubSpotEmulator, written: str
) -> None:
    """Once approved, the deal moves to the new stage, however the model wrote a default
    stage (it wrote "closed_won", which HubSpot refuses)."""
    deal = hubspot.crm.add("deals", {"dealname": "Initech", "dealstage": "contractsent"})
    action = workspace.propose_and_approve(
        "hubspot_update_deal_stage", {"deal_id": deal.id, "stage": written}
    )

    executed = workspace.execute(action["id"])

    assert executed["status"] == "executed"
    assert hubspot.crm.get("deals", deal.id).properties["dealstage"] == "closedwon"


def test_an_invalid_stage_fails_with_hubspots_reason(
    workspace: Workspace, hubspot: HubSpotEmulator
) -> None:
    """HubSpot's validation message reaches the people waiting on the action."""
    deal = hubspot.crm.add("deals", {"dealname": "Umbrella", "dealstage": "contractsent"})
    action = workspace.propose_and_approve(
        "hubspot_update_deal_stage", {"deal_id": deal.id, "stage": "won_maybe"}
    )

    failed = workspace.execute(action["id"])

    assert failed["status"] == "failed"
    assert failed["error"].startswith("HubSpot refused the request: Property values were not valid")
    assert "won_maybe was not one of the allowed options" in failed["error"]
    assert hubspot.crm.get("deals", deal.id).properties["dealstage"] == "contractsent"


def test_a_deal_stage_card_shows_the_stage_before_and_after(
    workspace: Workspace, hubspot: HubSpotEmulator
) -> None:
    """The card of a stage change names the deal and reads "Stage: Contract sent → Closed
    won", as HubSpot had it when the action was proposed; no ids or hashes on it."""
    deal = hubspot.crm.add("deals", {"dealname": "Initech renewal", "dealstage": "contractsent"})

    _, action = workspace.propose(
        "hubspot_update_deal_stage", {"deal_id": deal.id, "stage": "closedwon"}
    )

    assert action is not None
    _, blocks = approval_message(action)
    card = json.dumps([b for b in blocks if b["type"] != "actions"], ensure_ascii=False)
    assert "*Deal: Initech renewal*\\nStage: Contract sent → Closed won" in card
    assert action["shown_hash"] and action["shown_hash"][:16] not in card


def test_a_note_card_names_the_contact_and_their_company(
    workspace: Workspace, hubspot: HubSpotEmulator
) -> None:
    """The card of a note says whose timeline it goes on: their name (as the tenant lets
    approvers see names: by default their initials) and company."""
    contact = hubspot.crm.add(
        "contacts", {"firstname": "Dana", "lastname": "Ito", "company": "Globex"}
    )

    _, action = workspace.propose(
        "hubspot_add_contact_note", {"contact_id": contact.id, "text": "Called about renewal"}
    )

    assert action is not None
    assert action["preview"]["subject"] == "Contact: D. I. (Globex)"
    assert "Dana" not in json.dumps(action["preview"])


def test_a_preview_that_cannot_be_read_says_so_without_blocking_the_card(
    workspace: Workspace, hubspot: HubSpotEmulator
) -> None:
    """A deal HubSpot cannot find still gets its card, which says what could not be read."""
    _, action = workspace.propose(
        "hubspot_update_deal_stage", {"deal_id": "424242", "stage": "closedwon"}
    )

    assert action is not None and action["status"] == "pending"
    _, blocks = approval_message(action)
    assert ":warning: Could not read the current stage: HubSpot: not found" in json.dumps(
        blocks, ensure_ascii=False
    )


def test_a_stage_changed_after_the_card_stops_execution(
    workspace: Workspace, hubspot: HubSpotEmulator
) -> None:
    """If someone moves the deal after the card was posted, the approved change is not
    made: the action fails saying what changed, and the deal keeps the newer stage."""
    deal = hubspot.crm.add("deals", {"dealname": "Hooli", "dealstage": "contractsent"})
    _, action = workspace.propose(
        "hubspot_update_deal_stage", {"deal_id": deal.id, "stage": "closedwon"}
    )
    assert action is not None
    hubspot.crm.update("deals", deal.id, {"dealstage": "decisionmakerboughtin"})
    workspace.approve(action)
    hubspot.reset()

    failed = workspace.execute(action["id"])

    assert failed["status"] == "failed"
    assert failed["error"] == (
        "The deal's stage changed from Contract sent to Decision maker bought-in after this "
        "card was posted; nothing was changed. Ask again if it is still wanted."
    )
    assert hubspot.crm.get("deals", deal.id).properties["dealstage"] == "decisionmakerboughtin"
    assert [r.method for r in hubspot.requests] == ["GET"]
    _, blocks = approval_message(failed)
    card = json.dumps(blocks, ensure_ascii=False)
    assert "stopped" in card and "changed from Contract sent to Decision maker bought-in" in card
