"""Zendesk tools against the Zendesk emulator over real HTTP: reads run at once and explain
their failures; writes wait for approval and, once approved, happen exactly once."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

import pytest

from connectors.rest import ConnectorError, RestClient, new_http_client
from connectors.zendesk import api
from sandbox.zendesk_api import ZendeskEmulator
from testbed.markers import new_marker
from tests.connectors.workspace import Workspace
from tests.connectors.zendesk.conftest import EMAIL, TOKEN


def _client(zendesk: ZendeskEmulator) -> RestClient:
    login = base64.b64encode(f"{EMAIL}/token:{TOKEN}".encode()).decode()
    return RestClient(
        http=new_http_client(),
        service="Zendesk",
        connector="zendesk",
        base_url=zendesk.api_url,
        auth_headers={"Authorization": f"Basic {login}"},
    )


def test_ticket_search_follows_next_page_links(zendesk: ZendeskEmulator) -> None:
    """A search larger than one page follows Zendesk's `next_page` links."""
    word = f"printer{new_marker(6)}"
    for n in range(130):
        zendesk.helpdesk.add_ticket(f"{word} jam {n}", "It jams")
    zendesk.reset()

    found = api.search_tickets(_client(zendesk), word, limit=120)

    assert len(found) == 120 and len({t["id"] for t in found}) == 120
    pages = [r.query.get("page") for r in zendesk.requests]
    assert pages == [None, "2"]


def test_reading_a_ticket_follows_comment_cursors(zendesk: ZendeskEmulator) -> None:
    """Comments come in cursor pages (`meta.has_more`, `page[after]`), read to the end."""
    ticket = zendesk.helpdesk.add_ticket("VPN drops", "Every hour")
    for n in range(119):
        zendesk.helpdesk.add_comment(ticket.id, f"update {n}", public=True, author_id=7)
    zendesk.reset()

    read = api.read_ticket(_client(zendesk), ticket.id, comment_limit=500)

    assert read["subject"] == "VPN drops" and len(read["comments"]) == 120
    assert read["comments"][-1]["body"] == "update 118"
    comment_pages = [r.query for r in zendesk.requests if r.path.endswith("/comments.json")]
    assert len(comment_pages) == 2 and "page[after]" in comment_pages[1]


def test_the_search_tool_finds_tickets(workspace: Workspace, zendesk: ZendeskEmulator) -> None:
    """The search tool passes Zendesk's search syntax and returns the tickets found."""
    word = f"refund{new_marker(6)}"
    open_one = zendesk.helpdesk.add_ticket(f"{word} please", "Order 1")
    zendesk.helpdesk.add_ticket(f"{word} again", "Order 2", status="solved")

    result = workspace.call("zendesk_search_tickets", {"query": f"{word} status:open"})

    assert [t["id"] for t in result["tickets"]] == [open_one.id]
    assert result["tickets"][0]["subject"] == f"{word} please"


def test_the_read_tool_shows_comments(workspace: Workspace, zendesk: ZendeskEmulator) -> None:
    """Reading a ticket gives its fields and its conversation."""
    ticket = zendesk.helpdesk.add_ticket("Invoice wrong", "The VAT is missing", requester_id=42)
    zendesk.helpdesk.add_comment(ticket.id, "Looking into it", public=True, author_id=9001)

    result = workspace.call("zendesk_read_ticket", {"ticket_id": ticket.id})

    assert result["status"] == "open" and result["requester_id"] == 42
    assert [c["body"] for c in result["comments"]] == ["The VAT is missing", "Looking into it"]


def test_an_oauth_token_is_sent_as_a_bearer_token(
    new_workspace: Callable[[], Workspace], zendesk: ZendeskEmulator
) -> None:
    """A tenant connected with an OAuth token (not an API token) reads tickets too."""
    zendesk.reset()
    space = new_workspace()
    space.connect("zendesk", TOKEN, account="acme")
    ticket = zendesk.helpdesk.add_ticket("Bearer", "works")

    result = space.call("zendesk_read_ticket", {"ticket_id": ticket.id})

    assert result["subject"] == "Bearer"


def test_a_rate_limited_read_waits_for_retry_after(
    workspace: Workspace, zendesk: ZendeskEmulator
) -> None:
    """A 429 is waited out for as long as its Retry-After says, then the read succeeds."""
    ticket = zendesk.helpdesk.add_ticket("Slow", "down")
    zendesk.fail_next(429, retry_after=1)

    started = time.monotonic()
    result = workspace.call("zendesk_read_ticket", {"ticket_id": ticket.id})

    assert time.monotonic() - started >= 1.0
    assert result["subject"] == "Slow"


def test_a_rejected_token_becomes_a_clear_tool_error(
    workspace: Workspace, zendesk: ZendeskEmulator
) -> None:
    """A 401 reaches the agent as a sentence telling an admin to reconnect."""
    zendesk.fail_next(401)

    result = workspace.call("zendesk_search_tickets", {"query": "anything"})

    assert result == {
        "error": "Zendesk rejected the token: ask an admin to reconnect with "
        "`/agent connect zendesk`"
    }


def test_a_missing_ticket_is_not_found(workspace: Workspace) -> None:
    """Reading a ticket that does not exist says so, in words."""
    assert workspace.call("zendesk_read_ticket", {"ticket_id": 987654}) == {
        "error": "Zendesk: not found"
    }


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("zendesk_add_comment", {"ticket_id": 1, "body": "We refunded you", "public": True}),
        ("zendesk_set_status", {"ticket_id": 1, "status": "solved"}),
    ],
)
def test_a_write_becomes_a_pending_action(
    workspace: Workspace, zendesk: ZendeskEmulator, tool: str, arguments: dict[str, object]
) -> None:
    """A write tool changes nothing in Zendesk from the Act step (a status change only
    reads the ticket its card shows): it waits for approval."""
    told, action = workspace.propose(tool, arguments)

    assert told.startswith("Waiting for approval, not done yet: action ")
    assert action is not None and action["status"] == "pending" and action["tool"] == tool
    assert {r.method for r in zendesk.requests} <= {"GET"}


def test_an_approved_comment_is_added_once_even_when_retried(
    workspace: Workspace, zendesk: ZendeskEmulator
) -> None:
    """A comment whose update failed after Zendesk kept it is found on retry, not re-added."""
    ticket = zendesk.helpdesk.add_ticket("Refund", "Where is my refund?")
    action = workspace.propose_and_approve(
        "zendesk_add_comment", {"ticket_id": ticket.id, "body": "Refund sent today."}
    )
    zendesk.fail_next(503, after_commit=True)

    with pytest.raises(ConnectorError):
        workspace.execute(action["id"])  # the job fails; Dramatiq would retry it
    executed = workspace.execute(action["id"])

    bodies = [c.body for c in zendesk.helpdesk.comments_of(ticket.id)]
    assert bodies == ["Where is my refund?", "Refund sent today."]
    assert executed["status"] == "executed" and executed["result"]["ticket_id"] == ticket.id
    writes = [r for r in zendesk.requests if r.method == "PUT"]
    assert [w.idempotency_key for w in writes] == [action["idempotency_key"]]
    assert zendesk.helpdesk.comments_of(ticket.id)[-1].public is False  # an internal note


def test_a_repeated_write_with_the_same_key_acts_once(
    workspace: Workspace, zendesk: ZendeskEmulator
) -> None:
    """The Idempotency-Key makes Zendesk answer a repeated comment instead of adding it."""
    ticket = zendesk.helpdesk.add_ticket("Twice", "Once please")
    tool = workspace.registry.get("zendesk_add_comment")
    assert tool is not None
    arguments = tool.parse({"ticket_id": ticket.id, "body": "Only once"})

    first = tool.run(workspace.context, arguments, "run:1:call:0:test-key")
    second = tool.run(workspace.context, arguments, "run:1:call:0:test-key")

    assert first == second
    assert [c.body for c in zendesk.helpdesk.comments_of(ticket.id)] == ["Once please", "Only once"]


def test_an_approved_status_change_is_made(workspace: Workspace, zendesk: ZendeskEmulator) -> None:
    """Once approved, the ticket gets the new status."""
    ticket = zendesk.helpdesk.add_ticket("Done?", "Yes")
    action = workspace.propose_and_approve(
        "zendesk_set_status", {"ticket_id": ticket.id, "status": "solved"}
    )

    executed = workspace.execute(action["id"])

    assert executed["status"] == "executed"
    assert zendesk.helpdesk.ticket(ticket.id).status == "solved"


def test_a_closed_ticket_refuses_changes_with_zendesks_reason(
    workspace: Workspace, zendesk: ZendeskEmulator
) -> None:
    """Zendesk's validation message reaches the people waiting on the action."""
    ticket = zendesk.helpdesk.add_ticket("Old", "Closed long ago", status="closed")
    action = workspace.propose_and_approve(
        "zendesk_set_status", {"ticket_id": ticket.id, "status": "open"}
    )

    failed = workspace.execute(action["id"])

    assert failed["status"] == "failed"
    assert failed["error"] == (
        "Zendesk refused the request: Record validation errors; "
        "Status: closed prevents ticket update"
    )


def test_a_status_card_shows_the_subject_and_status_before_and_after(
    workspace: Workspace, zendesk: ZendeskEmulator
) -> None:
    """The card of a status change names the ticket by its subject and reads
    "Status: open → solved", as Zendesk had it when the card was made."""
    ticket = zendesk.helpdesk.add_ticket("Refund for order 1042", "Where is my refund?")

    _, action = workspace.propose(
        "zendesk_set_status", {"ticket_id": ticket.id, "status": "solved"}
    )

    assert action is not None
    assert action["preview"]["subject"] == f"Ticket #{ticket.id}: Refund for order 1042"
    assert action["preview"]["changes"] == ["Status: open → solved"]


def test_a_status_changed_after_the_card_stops_execution(
    workspace: Workspace, zendesk: ZendeskEmulator
) -> None:
    """A ticket someone put on hold after the card was posted is not solved by the
    approval: the action fails saying what changed, and the ticket stays on hold."""
    ticket = zendesk.helpdesk.add_ticket("Cancel my plan", "Please cancel")
    _, action = workspace.propose(
        "zendesk_set_status", {"ticket_id": ticket.id, "status": "solved"}
    )
    assert action is not None
    zendesk.helpdesk.ticket(ticket.id).status = "hold"
    workspace.approve(action)

    failed = workspace.execute(action["id"])

    assert failed["status"] == "failed"
    assert failed["error"].startswith(
        "The ticket's status changed from open to hold after this card was posted; "
        "nothing was changed."
    )
    assert zendesk.helpdesk.ticket(ticket.id).status == "hold"
