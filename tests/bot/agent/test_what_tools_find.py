"""What the agent does with what its tools find, and do not find. An action naming a
record by an id nobody gave is never proposed: planned beside reads, it waits for them,
and the model proposes it again with the id they found; otherwise it is refused, and the
model and the reply hear why. A reply that found nothing says where it looked. Run
through the real agent loop with the templates, as a golden case is."""

from __future__ import annotations

from typing import Any

import pytest

from bot.templates.evaluate import golden_run_steps, run_case
from bot.templates.golden import GoldenCase, Transcript
from core.agent_template import load_template
from core.tools import ToolRegistry
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from testbed.markers import new_marker
from tests.connectors.workspace import DB
from tests.support.processes import REPO
from tests.templates.test_templates import conn, json_plans_model, pool, registry

__all__ = ["conn", "pool", "registry"]  # the module-scoped fixtures these tests share

SEARCH = {
    "name": "zendesk_search_tickets",
    "arguments": {"query": "status:open late order Maria Lopez", "limit": None},
    "reason": "Find Maria's ticket",
}
FOUND = {"tickets": [{"id": 733, "subject": "Order 55341 still not delivered"}]}
TWO = {"tickets": [*FOUND["tickets"], {"id": 734, "subject": "Order 55342 damaged"}]}
TICKET_733 = {"id": 733, "status": "open", "comments": ["Order 55341 was returned to the depot"]}


def reply_on(ticket_id: int) -> dict[str, Any]:
    return {
        "name": "zendesk_add_comment",
        "arguments": {"ticket_id": ticket_id, "body": "We are reshipping it.", "public": True},
        "reason": "Tell Maria",
    }


def plan(*calls: dict[str, Any]) -> dict[str, Any]:
    return {"intent": "answer", "search_queries": [], "tool_calls": list(calls)}


DRAFT = {"answer": "The reply to Maria is waiting for approval.", "citations": []}
# A read of a ticket number nobody gave (the 1.5B model's favourite)
READ_MADE_UP = {
    "name": "zendesk_read_ticket",
    "arguments": {"ticket_id": 1234567890},
    "reason": "Read Maria's ticket",
}


ASKED = "Find Maria Lopez's open ticket and tell her we are reshipping it"


def run(
    llm: OpenAIEmulator,
    registry: ToolRegistry,
    conn: DB,
    replies: list[Any],
    *,
    asked: str = ASKED,
    max_steps: int = 16,
    template: str = "support",
    found: dict[str, Any] | None = None,
    passages: list[dict[str, str]] | None = None,
) -> tuple[Transcript, list[dict[str, Any]]]:
    """`template`'s loop asked `asked`, the model answering with `replies`, the read
    tools with `found` (by tool; by default the search finds Maria's ticket) and the
    knowledge base with `passages`; what it did and what the model was sent."""
    request = f"{asked} ({new_marker(6)})"
    case = GoldenCase.model_validate(
        {
            "id": f"ids-{new_marker(6)}",
            "kind": "chain",
            "request": request,
            "tool_results": {"zendesk_search_tickets": FOUND} if found is None else found,
            "passages": passages or [],
            "expect": {},
        }
    )
    llm.script(*(Reply(content=reply) for reply in replies), match=request)
    model = json_plans_model(llm)
    steps = golden_run_steps(conn, case.id, max_steps=max_steps)
    loaded = load_template(REPO / "templates" / f"{template}.yaml")
    transcript = run_case(loaded, case, llm=model, registry=registry, steps=steps)
    assert llm.pending() == [], "the loop did not ask for every scripted turn"
    return transcript, llm.requests(match=request)


def proposed_tickets(transcript: Transcript) -> list[int]:
    """The tickets replies were proposed on (calls held back are not made)."""
    return [
        arguments["ticket_id"]
        for name, arguments in transcript.tool_calls
        if name == "zendesk_add_comment"
    ]


def test_a_reply_on_a_ticket_number_the_model_made_up_waits_for_the_search(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """The model searched for Maria's ticket and, in the same plan, replied on ticket
    1234567890: the reply waits, the model is told why, and proposes it on ticket 733."""
    transcript, sent = run(
        llm,
        registry,
        conn,
        [plan(SEARCH, reply_on(1234567890)), plan(reply_on(733)), DRAFT],
    )

    assert proposed_tickets(transcript) == [733]
    assert transcript.proposed == ["zendesk_add_comment"]
    told = sent[1]["messages"][-1]["content"]
    assert "Order 55341 still not delivered" in told  # the search's result
    assert (
        "zendesk_add_comment was not made yet: ticket_id 1234567890 is not in the message" in told
    )
    assert "These results name: 733." in told


def test_a_reply_on_a_ticket_the_person_named_is_proposed_at_once(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """The same plan, with the ticket number the person gave, is not held back: no turn is
    spent on it."""
    transcript, sent = run(
        llm,
        registry,
        conn,
        [plan(SEARCH, reply_on(733)), plan(), DRAFT],
        asked="Check Maria Lopez's tickets and tell her on ticket 733 that we are reshipping",
    )

    assert proposed_tickets(transcript) == [733]
    assert "not made yet" not in sent[1]["messages"][-1]["content"]


def test_a_made_up_ticket_number_is_refused_when_no_read_can_find_the_ticket(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """Planned alone, or repeated after the reads ran, a reply on a ticket nobody named is
    not proposed (the model gets a turn to search, and does not): no approver sees a card
    for it, and the draft hears why."""
    alone, sent_alone = run(llm, registry, conn, [plan(reply_on(1234567890)), plan(), DRAFT])
    repeated, _ = run(
        llm,
        registry,
        conn,
        [plan(SEARCH, reply_on(1234567890)), plan(reply_on(1234567890)), plan(), DRAFT],
    )

    assert proposed_tickets(alone) == [] and alone.proposed == []
    assert proposed_tickets(repeated) == [] and repeated.proposed == []
    assert (
        "Not made: ticket_id 1234567890 is not in the message or in any result"
        in (
            sent_alone[1]["messages"][-1]["content"]  # the planner hears which id and why
        )
    )
    # the draft hears the outcome, not the planner's ids and instructions, which the 1.5B
    # model copied into the reply
    draft_prompt = sent_alone[-1]["messages"][-1]["content"]
    assert "I did not do it: I could not find the record it is for." in draft_prompt
    assert "1234567890" not in draft_prompt and "call it again" not in draft_prompt


def test_an_action_refused_for_a_made_up_id_gets_a_turn_to_search(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """Planned alone, a reply on ticket 1234567890 is refused with "search first": the
    model gets the turn to do so, and proposes the reply on the ticket it found. Told of
    the refusal, a run that went straight to the draft said the deal had moved."""
    transcript, sent = run(
        llm,
        registry,
        conn,
        [plan(reply_on(1234567890)), plan(SEARCH), plan(reply_on(733)), DRAFT],
    )

    assert [name for name, _ in transcript.tool_calls] == [
        "zendesk_search_tickets",
        "zendesk_add_comment",
    ]
    assert proposed_tickets(transcript) == [733]
    assert "Not made: ticket_id 1234567890" in sent[1]["messages"][-1]["content"]


def test_with_no_turn_left_the_made_up_ticket_number_is_refused_not_held(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """Held back only when another turn surely fits: with the run's steps nearly spent, the
    reply is refused at once (and the search still runs)."""
    transcript, sent = run(
        llm, registry, conn, [plan(SEARCH, reply_on(1234567890)), DRAFT], max_steps=6
    )

    assert [name for name, _ in transcript.tool_calls] == ["zendesk_search_tickets"]
    assert (
        "I did not do it: I could not find the record it is for."
        in sent[-1]["messages"][-1]["content"]
    )


def test_a_reply_that_found_nothing_says_where_it_looked(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """Asked to read an email, the agent searched the mailbox and found nothing: the
    person is told so, not only that the knowledge base had nothing."""
    search = {
        "name": "gmail_search_threads",
        "arguments": {"query": "Hank renewal", "limit": None},
        "reason": "Find Hank's email",
    }
    transcript, _ = run(
        llm,
        registry,
        conn,
        [
            plan(search),
            plan(),
            {"answer": "I could not find it in the knowledge base.", "citations": []},
        ],
        asked="Summarise Hank's latest email about the renewal",
        template="sales",
        found={"gmail_search_threads": {"threads": []}},
    )

    assert transcript.answer == (
        "I couldn't find this in the knowledge base, nor in what I looked up: "
        "search Gmail for 'Hank renewal'."
    )


def test_a_read_of_a_made_up_record_is_refused_and_the_model_searches_instead(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """The model read HubSpot record 1234567890 instead of searching for the contact: such
    a read can only find nothing, so it is not made, and the model is told to search."""
    transcript, sent = run(
        llm,
        registry,
        conn,
        [plan(READ_MADE_UP), plan(SEARCH), plan(reply_on(733)), DRAFT],
    )

    assert [name for name, _ in transcript.tool_calls] == [
        "zendesk_search_tickets",
        "zendesk_add_comment",
    ]
    assert proposed_tickets(transcript) == [733]
    told = sent[1]["messages"][-1]["content"]
    assert "Not made: ticket_id 1234567890 is not in the message" in told
    # named the search of the same system: told only to "search first" for a deal, the
    # 1.5B model gave up; told "with gmail_search_threads or hubspot_search_contacts", it
    # searched Gmail for a HubSpot deal
    assert "Find it with zendesk_search_tickets first" in told
    assert "gmail_search_threads" not in told


@pytest.mark.parametrize(
    "made_up", [1234567890, "<ticket_id>", "{{result.zendesk_search_tickets[0].id}}"]
)
def test_a_read_written_beside_its_search_reads_the_one_record_the_search_found(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB, made_up: int | str
) -> None:
    """The model searched and, in the same plan, read the record it could not know yet:
    "<contact_id>", "{{result.hubspot_search_contacts[0].id}}" or a made-up number. Told
    the id the search had found, it searched again instead of reading. A read changes
    nothing: where the search found one record of its kind, that record is read, and the
    model sees what it holds in its next turn."""
    read_made_up = {**READ_MADE_UP, "arguments": {"ticket_id": made_up}}
    transcript, sent = run(
        llm,
        registry,
        conn,
        [plan(SEARCH, read_made_up), plan(reply_on(733)), DRAFT],
        found={"zendesk_search_tickets": FOUND, "zendesk_read_ticket": TICKET_733},
    )

    assert [name for name, _ in transcript.tool_calls] == [
        "zendesk_search_tickets",
        "zendesk_read_ticket",
        "zendesk_add_comment",
    ]
    assert transcript.tool_calls[1][1] == {"ticket_id": 733}
    assert proposed_tickets(transcript) == [733]
    assert "Order 55341 was returned to the depot" in sent[1]["messages"][-1]["content"]


def test_a_read_of_an_id_nobody_gave_hears_the_records_when_the_search_found_several(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """With two tickets found, which one the model meant is its to say: the read is not
    made, and the model is told which ids the search found, and reads one."""
    read_found = {**READ_MADE_UP, "arguments": {"ticket_id": 733}}
    transcript, sent = run(
        llm,
        registry,
        conn,
        [plan(SEARCH, READ_MADE_UP), plan(read_found), plan(reply_on(733)), DRAFT],
        found={"zendesk_search_tickets": TWO, "zendesk_read_ticket": TICKET_733},
    )

    assert [name for name, _ in transcript.tool_calls] == [
        "zendesk_search_tickets",
        "zendesk_read_ticket",
        "zendesk_add_comment",
    ]
    told = sent[1]["messages"][-1]["content"]
    assert "zendesk_read_ticket was not made yet: ticket_id 1234567890 is not in the" in told
    assert "These results name: 733, 734." in told


def test_a_read_of_a_placeholder_after_the_search_reads_the_ticket_found(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """The search ran in one turn; in the next the model read "<ticket_id>" instead of
    the ticket it found: the ticket found is read, once, however often the model plans
    that read or the same read by its number."""
    read = {"name": "zendesk_read_ticket", "reason": "Read Maria's ticket"}
    transcript, sent = run(
        llm,
        registry,
        conn,
        [
            plan(SEARCH),
            plan({**read, "arguments": {"ticket_id": "<ticket_id>"}}),
            plan({**read, "arguments": {"ticket_id": 733}}),
            plan(),
            DRAFT,
        ],
        found={"zendesk_search_tickets": FOUND, "zendesk_read_ticket": TICKET_733},
    )

    assert [name for name, _ in transcript.tool_calls] == [
        "zendesk_search_tickets",
        "zendesk_read_ticket",
    ]
    assert transcript.tool_calls[1][1] == {"ticket_id": 733}
    assert "Order 55341 was returned to the depot" in sent[2]["messages"][-1]["content"]


FREE_BUSY = {
    "name": "calendar_free_busy",
    "arguments": {
        "attendees": ["priya@initech.example"],
        "start": "2025-03-05T15:00:00Z",
        "end": "2025-03-05T15:30:00Z",
    },
    "reason": "Check Priya is free first",
}
INVITE = {
    "name": "calendar_create_invite",
    "arguments": {
        "summary": "Renewal call",
        "attendees": ["Priya@initech.example"],
        "start": "2025-03-05T15:00:00Z",
        "end": "2025-03-05T15:30:00Z",
    },
    "reason": "Book the call",
}
ASKED_INVITE = "Book a 30-minute call with priya@initech.example on 2025-03-05 at 15:00 UTC"


def calendar(busy: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "calendar_free_busy": {
            "time_min": "2025-03-05T15:00:00Z",
            "time_max": "2025-03-05T15:30:00Z",
            "calendars": {"priya@initech.example": {"busy": busy}},
        }
    }


def test_an_invite_to_someone_the_calendar_shows_busy_is_not_proposed(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """The model checked Priya's calendar and, in the same plan, invited her: she is busy
    then, so no approver sees the invite, and the draft hears who is busy and when."""
    transcript, sent = run(
        llm,
        registry,
        conn,
        [plan(FREE_BUSY, INVITE), plan(), {"answer": "Priya is busy then.", "citations": []}],
        asked=ASKED_INVITE,
        template="sales",
        found=calendar([{"start": "2025-03-05T14:30:00Z", "end": "2025-03-05T16:00:00Z"}]),
    )

    assert transcript.proposed == []
    assert [name for name, _ in transcript.tool_calls] == ["calendar_free_busy"]
    told = sent[1]["messages"][-1]["content"]
    assert "Not proposed: priya@initech.example is busy Wed 5 Mar 2025, 14:30 to 16:00" in told


def test_an_invite_to_someone_free_is_proposed_after_the_check(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """The same plan when Priya's calendar is free at that time (a meeting that ends as
    the call starts does not count): the invite is proposed, once the check has run, and
    the reply says it waits for approval though the draft left that out."""
    transcript, _ = run(
        llm,
        registry,
        conn,
        [
            plan(FREE_BUSY, INVITE),
            plan(),
            {"answer": "I have prepared the invite to the renewal call.", "citations": []},
        ],
        asked=ASKED_INVITE,
        template="sales",
        found=calendar([{"start": "2025-03-05T14:00:00Z", "end": "2025-03-05T15:00:00Z"}]),
    )

    assert [name for name, _ in transcript.tool_calls] == [
        "calendar_free_busy",
        "calendar_create_invite",
    ]
    assert transcript.proposed == ["calendar_create_invite"]
    assert transcript.answer == (
        "I have prepared the invite to the renewal call.\n\n"
        "Nothing is done yet: what you asked for is waiting for approval."
    )


def test_what_a_read_found_reaches_the_model_as_json_not_as_escaped_text(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """Shown a contact as a string of escaped JSON ('"{\\"id\\": \\"5120\\"..."'), the 1.5B
    model drafted that it still had to look the contact up; shown it as JSON beside
    "nothing in the knowledge base matched", that it could not find it. The next Plan turn
    and the Draft show each JSON result as JSON, and the Draft is told to answer from
    them."""
    _, sent = run(
        llm,
        registry,
        conn,
        [plan(SEARCH), plan(), {"answer": "Maria's ticket is 733.", "citations": []}],
        asked="Which ticket is Maria Lopez's late order?",
    )

    shown = '"output": {"tickets": [{"id": 733, "subject": "Order 55341 still not delivered"}]}'
    plan_turn, draft = sent[1]["messages"][-1]["content"], sent[-1]["messages"][-1]["content"]
    assert shown in plan_turn and shown in draft
    assert '\\"tickets\\"' not in plan_turn + draft
    # and the Draft, with nothing from the knowledge base, is told to answer from them
    assert "Sources: none from the knowledge base. Answer from what your tools found" in draft
    assert "nothing in the knowledge base matched" not in draft


def test_a_draft_after_searches_that_found_nothing_is_not_told_to_answer_from_them(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """Told "answer from what your tools found" beside a search that had found nothing,
    the 1.5B model gave Umbrella Corp's contact the phone number 555-123-4567. The Draft
    hears that nothing matched."""
    _, sent = run(
        llm,
        registry,
        conn,
        [plan(SEARCH), plan(), {"answer": "I couldn't find it.", "citations": []}],
        asked="Which ticket is Maria Lopez's late order?",
        found={"zendesk_search_tickets": {"tickets": []}},
    )

    draft = sent[-1]["messages"][-1]["content"]
    assert "nothing in the knowledge base matched" in draft
    assert "Answer from what your tools found" not in draft


def test_only_the_first_plan_may_decline_the_message(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """Asked how much discount a 150-seat customer may get, the 1.5B model searched
    HubSpot and Gmail, found nothing, and ended with intent "decline"; the Draft, shown
    the discount rule in the sources, answered "I cannot give a discount". A later turn
    decides the next calls, not whether the message is declined."""
    _, sent = run(
        llm,
        registry,
        conn,
        [plan(SEARCH), {**plan(), "intent": "decline"}, DRAFT],
        asked="How much discount can I give a customer buying 150 seats?",
        found={"zendesk_search_tickets": {"tickets": []}},
    )

    draft = sent[-1]["messages"][-1]["content"]
    assert '"intent": "answer"' in draft
    assert '"intent": "decline"' not in draft


CONTACT_SEARCH = {
    "name": "hubspot_search_contacts",
    "arguments": {"query": "Initech", "limit": None},
    "reason": "Find our Initech contact",
}
PRIYA = {
    "contacts": [
        {
            "id": "204",
            "properties": {"firstname": "Priya", "lastname": "Patel", "company": "Initech"},
            "email": "priya@initech.example",
        }
    ]
}


def email_to(address: str) -> dict[str, Any]:
    return {
        "name": "send_email",
        "arguments": {"to": [address], "subject": "Your quote", "text": "It is ready."},
        "reason": "Tell the contact",
    }


def proposed_recipients(transcript: Transcript) -> list[list[str]]:
    return [arguments["to"] for name, arguments in transcript.tool_calls if name == "send_email"]


def email_our_initech_contact(
    llm: OpenAIEmulator,
    registry: ToolRegistry,
    conn: DB,
    replies: list[Any],
    found: dict[str, Any] | None = None,
) -> tuple[Transcript, list[dict[str, Any]]]:
    """The sales loop asked to email "our contact at Initech", whom only a CRM search finds."""
    return run(
        llm,
        registry,
        conn,
        replies,
        asked="Email our contact at Initech that their renewal quote is ready",
        template="sales",
        found=found if found is not None else {"hubspot_search_contacts": PRIYA},
    )


def test_an_email_to_an_address_the_model_made_up_waits_for_the_search(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """Asked to email "our contact at Initech", the 1.5B model searched the CRM and, in the
    same plan, wrote to contact@initech.com, an address nobody gave: the email waits, the
    model hears the address the search found, and proposes it to Priya."""
    transcript, sent = email_our_initech_contact(
        llm,
        registry,
        conn,
        [
            plan(CONTACT_SEARCH, email_to("contact@initech.com")),
            plan(email_to("priya@initech.example")),
            DRAFT,
        ],
    )

    assert proposed_recipients(transcript) == [["priya@initech.example"]]
    assert transcript.proposed == ["send_email"]
    told = sent[1]["messages"][-1]["content"]
    assert "send_email was not made yet: to contact@initech.com is not in the message" in told
    assert "These results name: priya@initech.example." in told


def test_an_email_to_an_address_nobody_gave_is_never_proposed(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """Planned alone, the email to a made-up address is refused: no approver sees a card.
    The address the person wrote themselves is proposed at once."""
    alone, sent = email_our_initech_contact(
        llm, registry, conn, [plan(email_to("contact@initech.com")), plan(), DRAFT], found={}
    )
    named, _ = run(
        llm,
        registry,
        conn,
        [plan(email_to("priya@initech.example")), DRAFT],
        asked="Email priya@initech.example that her renewal quote is ready",
        template="sales",
    )

    assert alone.proposed == [] and proposed_recipients(alone) == []
    assert (
        "Not made: to contact@initech.com is not in the message"
        in (sent[1]["messages"][-1]["content"])
    )
    assert (
        "I did not send anything: I could not find the address to send to."
        in sent[-1]["messages"][-1]["content"]
    )
    assert named.proposed == ["send_email"]


def test_after_the_search_the_model_is_reminded_of_the_email_it_could_not_send(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """The email to a made-up address, planned alone, is refused; the model searches the
    CRM, and the turn after the search reminds it of the email with the address found:
    the 1.5B model, not reminded, read the contact twice and never came back to it."""
    transcript, sent = email_our_initech_contact(
        llm,
        registry,
        conn,
        [
            plan(email_to("contact@initech.com")),
            plan(CONTACT_SEARCH),
            plan(email_to("priya@initech.example")),
            DRAFT,
        ],
    )

    assert proposed_recipients(transcript) == [["priya@initech.example"]]
    reminded = sent[2]["messages"][-1]["content"]
    assert (
        "Still not done: send_email, not made because to contact@initech.com was in no "
        "message or result. The results now name: priya@initech.example." in reminded
    )


def test_an_id_refused_in_one_turn_is_not_taken_as_seen_in_the_next(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """The refusal of a read of ticket 1234567890 repeats the number; the model then
    searched and, beside the search, replied on 1234567890. The refusal's words are not
    where an id may come from: the reply waits for the search and goes on ticket 733."""
    transcript, sent = run(
        llm,
        registry,
        conn,
        [plan(READ_MADE_UP), plan(SEARCH, reply_on(1234567890)), plan(reply_on(733)), DRAFT],
    )

    assert proposed_tickets(transcript) == [733]
    assert "These results name: 733." in sent[2]["messages"][-1]["content"]


TOM_ASKED = (
    "Tom Baker emailed us the order number for ticket 640. Find his email and put the "
    "order number on the ticket as an internal note"
)
TOMS_EMAIL = {
    "gmail_search_threads": {"threads": [{"thread_id": "19a4c0de11b2", "subject": "Cracked"}]},
    "gmail_read_thread": {
        "thread_id": "19a4c0de11b2",
        "messages": [{"text": "Hi, the order number you asked for is 56002. Tom"}],
    },
}


def note_on_640(text: str) -> dict[str, Any]:
    return {
        "name": "zendesk_add_comment",
        "arguments": {"ticket_id": 640, "body": text, "public": False},
        "reason": "Note the order number",
    }


def test_a_note_with_an_order_number_nobody_gave_waits_for_the_email_to_be_read(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """Asked to note the order number Tom had emailed, the 1.5B model wrote "Order number:
    12345" beside its search: the note waits, the model reads the email, and the note it
    proposes holds the number Tom gave."""
    search = {
        "name": "gmail_search_threads",
        "arguments": {"query": "from:Tom Baker", "limit": None},
        "reason": "Find Tom's email",
    }
    read = {
        "name": "gmail_read_thread",
        "arguments": {"thread_id": "19a4c0de11b2"},
        "reason": "Read the order number",
    }
    transcript, sent = run(
        llm,
        registry,
        conn,
        [
            plan(search, note_on_640("Order number: 12345")),
            plan(read),
            plan(note_on_640("Order number from Tom's email: 56002")),
            DRAFT,
        ],
        asked=TOM_ASKED,
        found=TOMS_EMAIL,
    )

    notes = [a["body"] for name, a in transcript.tool_calls if name == "zendesk_add_comment"]
    assert notes == ["Order number from Tom's email: 56002"]
    told = sent[1]["messages"][-1]["content"]
    assert (
        "zendesk_add_comment was not made yet: the number 12345 in body is not in the message"
        in told
    )
    assert "first read what holds the right number" in told


def test_a_number_from_the_knowledge_found_is_not_made_up(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """A number the knowledge base gave (the returns line) may go into a reply at once."""
    text = "Please call our returns line on 0113496000, weekdays 9 to 5."
    transcript, _ = run(
        llm,
        registry,
        conn,
        [plan(note_on_640(text)), DRAFT],
        asked="Put our returns line on ticket 640 as an internal note",
        passages=[
            {
                "id": "returns#0",
                "title": "Returns",
                "text": "The returns line is 0113496000, weekdays 9 to 5.",
                "url": "https://handbook.northwind.example/returns",
            }
        ],
    )

    assert [a["body"] for name, a in transcript.tool_calls if name == "zendesk_add_comment"] == [
        text
    ]


def test_a_refused_call_planned_again_as_it_was_ends_the_tool_turns(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """The model planned the same search, the same read of "<ticket_id>" and the same
    reply on it, turn after turn: refused again each time, it used up the run's steps
    (12 model calls). A call refused before, planned again unchanged, is not made again,
    and with nothing new to do the run drafts."""
    read = {
        "name": "zendesk_read_ticket",
        "arguments": {"ticket_id": "<ticket_id>"},
        "reason": "Read Maria's ticket",
    }
    same = plan(SEARCH, read, reply_on(1234567890))
    transcript, sent = run(
        llm, registry, conn, [same, same, same, same, DRAFT], found={"zendesk_search_tickets": TWO}
    )

    # the search found two tickets, so "<ticket_id>" is neither: the read is refused;
    # the reply, held in the first turn and refused in the second, gets one more turn;
    # the third plan, all repeats, is told so once, and planned the same again, drafts
    assert len(sent) == 5
    assert "Every call in your last plan was made before" in sent[3]["messages"][-1]["content"]
    assert sent[4]["messages"][-1]["content"].startswith("The message to reply to:")  # drafts
    assert [name for name, _ in transcript.tool_calls] == ["zendesk_search_tickets"]
    assert transcript.proposed == []


def test_each_tool_turn_recalls_the_message_beside_the_results(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """A few turns on, the 1.5B model read the ticket it had found and then only read it
    again, the photo it was asked to request forgotten: the latest tool turn quotes the
    message beside the results (the earlier ones do not repeat it)."""
    read = {
        "name": "zendesk_read_ticket",
        "arguments": {"ticket_id": 733},
        "reason": "Read it",
    }
    _, sent = run(
        llm,
        registry,
        conn,
        [plan(SEARCH), plan(read), plan(), DRAFT],
        found={"zendesk_search_tickets": FOUND, "zendesk_read_ticket": {"id": 733}},
    )

    recalled = 'Decide the next step with these results for the message: "' + ASKED
    latest = sent[2]["messages"]
    assert recalled in latest[-1]["content"]
    assert not any(recalled in str(m["content"]) for m in latest[:-1])


def test_a_reply_that_found_nothing_says_what_it_did_not_send(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """Asked to email "our contact at Initech", the agent had only a made-up address: the
    person reads that nothing was sent and why, not that the knowledge base had nothing
    (what the sandbox showed), which answers nothing they asked."""
    transcript, _ = email_our_initech_contact(
        llm,
        registry,
        conn,
        [
            plan(email_to("contact@initech.com")),
            plan(),
            {"answer": "I could not find it in the knowledge base.", "citations": []},
        ],
        found={},
    )

    assert transcript.answer == (
        "I did not send anything: I could not find the address to send to."
    )


GLOBEX = {
    "hubspot_search_contacts": {
        "contacts": [{"id": "101", "properties": {"firstname": "Hank", "company": "Globex"}}]
    },
    "hubspot_read_record": {
        "type": "contact",
        "id": "101",
        "properties": {"firstname": "Hank", "company": "Globex"},
        "associations": {"companies": ["3001"], "deals": ["9002"]},
    },
}
GLOBEX_SEARCH = {
    "name": "hubspot_search_contacts",
    "arguments": {"query": "Globex", "limit": None},
    "reason": "Find the Globex contact",
}
# A read of "deal 101", where 101 is the contact the search found
READ_DEAL_101 = {
    "name": "hubspot_read_record",
    "arguments": {"record_type": "deal", "record_id": "101"},
    "reason": "The deal's stage",
}
READ_HANK = {
    "name": "hubspot_read_record",
    "arguments": {"record_type": "contact", "record_id": "101"},
    "reason": "Find the contact's deals",
}


def move_deal(deal_id: str) -> dict[str, Any]:
    return {
        "name": "hubspot_update_deal_stage",
        "arguments": {"deal_id": deal_id, "stage": "closedwon"},
        "reason": "Close the renewal as won",
    }


def move_globex_deal(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB, replies: list[Any]
) -> tuple[Transcript, list[dict[str, Any]]]:
    """The sales loop asked to move Globex's renewal deal, the CRM holding Hank (contact
    101, whose deal is 9002), the model answering with ``replies``."""
    return run(
        llm,
        registry,
        conn,
        replies,
        asked="Globex signed their renewal contract: move their renewal deal to closed won",
        template="sales",
        found=GLOBEX,
    )


def moved_deals(transcript: Transcript) -> list[str]:
    return [
        a["deal_id"] for name, a in transcript.tool_calls if name == "hubspot_update_deal_stage"
    ]


def test_a_deal_moved_by_a_contacts_id_is_not_proposed_and_the_deal_found_is(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """Asked to move Globex's renewal deal, the 1.5B model found the contact (101), read it
    (its deal: 9002) and moved "deal 101". 101 is in the results, but as a contact: the
    move is refused, the model hears why and which deal the results name, and moves 9002."""
    transcript, sent = move_globex_deal(
        llm,
        registry,
        conn,
        [
            plan(GLOBEX_SEARCH),
            plan(READ_HANK),
            plan(move_deal("101")),
            plan(move_deal("9002")),
            {
                "answer": "Moving the Globex renewal to closed won waits for approval.",
                "citations": [],
            },
        ],
    )

    assert moved_deals(transcript) == ["9002"]
    assert transcript.proposed == ["hubspot_update_deal_stage"]
    told = sent[3]["messages"][-1]["content"]
    assert "deal_id 101 is the id of a contact in the results, not of a deal" in told
    assert "These results name: 9002." in told  # never the contact's 101


def test_a_deal_the_person_named_by_the_same_number_as_a_contact_is_moved(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """The person's own words are where any id may come from: asked to move deal 101, the
    move is proposed although the results also hold a contact 101."""
    transcript, _ = run(
        llm,
        registry,
        conn,
        [plan(GLOBEX_SEARCH), plan(move_deal("101")), DRAFT],
        asked="Move deal 101 for Globex to closed won",
        template="sales",
        found=GLOBEX,
    )

    assert moved_deals(transcript) == ["101"]


def test_a_read_of_a_deal_by_a_contacts_id_is_told_to_read_the_contact(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """After the search found only the contact (101), the 1.5B model read "deal 101" and
    moved it. Both are refused: the model hears that 101 is a contact, not a deal, and
    to read the contact to find its deals; it reads the contact and moves 9002."""
    transcript, sent = move_globex_deal(
        llm,
        registry,
        conn,
        [
            plan(GLOBEX_SEARCH),
            plan(READ_DEAL_101, move_deal("101")),
            plan(READ_HANK),
            plan(move_deal("9002")),
            DRAFT,
        ],
    )

    assert moved_deals(transcript) == ["9002"]
    told = sent[2]["messages"][-1]["content"]
    assert (
        "record_id 101 is the id of a contact in the results, not of a deal: read contact "
        "101 to find its deals" in told
    )
    assert "These results name: 101" not in told


def test_a_search_repeated_after_a_refusal_is_told_so_and_the_model_reads_the_contact(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """Told that 101 was a contact's id and to read the contact, the 1.5B model searched
    the contacts again: a plan of repeats only, so nothing was made and the run ended with
    no deal moved. It is told that its calls were all made before, and again what it was
    told of the deal; it reads the contact and moves 9002."""
    transcript, sent = move_globex_deal(
        llm,
        registry,
        conn,
        [
            plan(GLOBEX_SEARCH),
            plan(READ_DEAL_101, move_deal("101")),
            plan(GLOBEX_SEARCH),
            plan(READ_HANK),
            plan(move_deal("9002")),
            DRAFT,
        ],
    )

    assert moved_deals(transcript) == ["9002"]
    told = sent[3]["messages"][-1]["content"]
    assert "Every call in your last plan was made before in this run" in told
    assert "read contact 101 to find its deals" in told


def test_a_contact_read_by_a_reference_to_the_search_reads_the_contact_found(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """Asked who the Globex contact is and where their renewal stands, the 1.5B model
    wrote its read of the contact as "{{result.hubspot_search_contacts[0].id}}" beside the
    search. The contact the search found is read, and the model moves its deal, 9002."""
    reference = {
        **READ_HANK,
        "arguments": {
            "record_type": "contact",
            "record_id": "{{result.hubspot_search_contacts[0].id}}",
        },
    }
    transcript, sent = move_globex_deal(
        llm,
        registry,
        conn,
        [plan(GLOBEX_SEARCH, reference), plan(move_deal("9002")), DRAFT],
    )

    assert transcript.tool_calls[1] == (
        "hubspot_read_record",
        {"record_type": "contact", "record_id": "101"},
    )
    assert moved_deals(transcript) == ["9002"]
    assert '"deals": ["9002"]' in sent[1]["messages"][-1]["content"]


def test_a_reply_never_says_a_refused_action_was_done(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """Every move refused (the deal nobody could find), the 1.5B model still wrote that the
    deal was moved. The requester is not told so: that sentence is taken out, and the reply
    says what was not done."""
    transcript, _ = move_globex_deal(
        llm,
        registry,
        conn,
        [
            plan(move_deal("1234567890")),
            plan(),
            {
                "answer": "Globex's renewal deal was moved to closed won. I could not find "
                "the deal to move.",
                "citations": [],
            },
        ],
    )

    assert transcript.proposed == []
    assert "was moved" not in transcript.answer
    assert "I did not do it: I could not find the record it is for." in transcript.answer


def test_a_search_that_found_nothing_is_told_to_try_other_words_or_another_search(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """Asked to email "our contact at Initech", the 1.5B model searched Gmail, found
    nothing, searched Gmail again with the same words and gave up: the contact was in
    HubSpot. Its next turn says the search found nothing and names the other searches."""
    gmail = {
        "name": "gmail_search_threads",
        "arguments": {"query": "Initech renewal quote", "limit": 1},
        "reason": "Find the thread",
    }
    hubspot = {
        "name": "hubspot_search_contacts",
        "arguments": {"query": "Initech", "limit": None},
        "reason": "Find the contact",
    }
    email = {
        "name": "send_email",
        "arguments": {
            "to": ["priya@initech.example"],
            "subject": "Your renewal quote",
            "text": "Hi Priya, your renewal quote is ready.",
        },
        "reason": "Tell Priya",
    }
    transcript, sent = run(
        llm,
        registry,
        conn,
        [plan(gmail), plan(hubspot), plan(email), DRAFT],
        asked="Email our contact at Initech that their renewal quote is ready",
        template="sales",
        found={
            "gmail_search_threads": {"results": []},
            "hubspot_search_contacts": {
                "contacts": [{"id": "102", "properties": {"email": "priya@initech.example"}}]
            },
        },
    )

    told = sent[1]["messages"][-1]["content"]
    assert (
        'gmail_search_threads found nothing for {"query": "Initech renewal quote", "limit": 1}: '
        "try other words, or search with hubspot_search_contacts." in told
    )
    assert "found nothing" not in sent[2]["messages"][-1]["content"]  # HubSpot found Priya
    assert transcript.proposed == ["send_email"]


def test_a_ticket_number_inside_another_number_is_not_taken_as_given(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """Asked what Jo's email says, the 1.5B model replied on "ticket 1", which no one had
    named: it passed as seen because a "1" is inside her order number and the thread's
    id, and the approver got a reply to an unknown ticket. An id counts as seen only
    where it stands whole."""
    read = {
        "name": "gmail_read_thread",
        "arguments": {"thread_id": "1b7e99aa0c31"},
        "reason": "Read what she wants",
    }
    thread = {
        "thread_id": "1b7e99aa0c31",
        "messages": [{"from": "jo.malik@customer.example", "text": "Return order 55991, please."}],
    }
    transcript, sent = run(
        llm,
        registry,
        conn,
        [plan(read), plan(reply_on(1)), plan(), DRAFT],
        asked="Read Jo's email in thread 1b7e99aa0c31 and tell me what she wants",
        found={"gmail_read_thread": thread},
    )

    assert transcript.proposed == []
    assert "Not made: ticket_id 1 is not in the message" in sent[2]["messages"][-1]["content"]


TICKET_977 = {"id": 977, "subject": "Scratched screen", "comments": ["It arrived scratched."]}


@pytest.mark.parametrize(
    ("asked", "search", "read", "found"),
    [
        (
            "Summarise ticket 977 for me.",
            {"name": "zendesk_search_tickets", "arguments": {"query": "ticket:977", "limit": 1}},
            ("zendesk_read_ticket", {"ticket_id": 977}),
            {"zendesk_read_ticket": TICKET_977},
        ),
        (
            "Hank answered us in Gmail (thread 18f3a9c2d4e5b607). Read it.",
            {
                "name": "gmail_search_threads",
                "arguments": {"query": "thread 18f3a9c2d4e5b607", "limit": 1},
            },
            ("gmail_read_thread", {"thread_id": "18f3a9c2d4e5b607"}),
            {"gmail_read_thread": {"messages": [{"text": "It arrived scratched."}]}},
        ),
        (
            "Read Hank's latest email (Gmail thread 18f3a9c2d4e5b700) and summarise it.",
            {
                "name": "gmail_search_threads",
                "arguments": {"query": "Hank's latest email", "limit": 1},
            },
            ("gmail_read_thread", {"thread_id": "18f3a9c2d4e5b700"}),
            {"gmail_read_thread": {"messages": [{"text": "It arrived scratched."}]}},
        ),
    ],
    ids=["zendesk ticket", "gmail thread", "gmail thread, searched in other words"],
)
def test_a_search_for_a_record_the_person_named_by_id_reads_that_record(
    llm: OpenAIEmulator,
    registry: ToolRegistry,
    conn: DB,
    asked: str,
    search: dict[str, Any],
    read: tuple[str, dict[str, Any]],
    found: dict[str, Any],
) -> None:
    """Asked to summarise ticket 977, the 1.5B model searched the tickets for "ticket:977"
    (and Gmail for "thread 18f3a9c2d4e5b607"), found nothing, and answered that it needed
    the ticket number. A search whose words hold the id of a record the person named
    reads that record, and the model sees what it holds; planned again, it is not made
    twice. Asked to read Gmail thread 18f3a9c2d4e5b700, the model searched Gmail for
    "Hank's latest email" and apologised that it found nothing: a search of the system
    that reads the record named, while no call has named it, reads it too."""
    call = {**search, "reason": "Find it"}
    template = "support" if read[0].startswith("zendesk") else "sales"
    transcript, sent = run(
        llm,
        registry,
        conn,
        [plan(call), plan(call), plan(), DRAFT],
        asked=asked,
        template=template,
        found=found,
    )

    assert transcript.tool_calls == [read]
    assert "It arrived scratched." in sent[1]["messages"][-1]["content"]
    assert "Every call in your last plan was made before" in sent[2]["messages"][-1]["content"]
    assert transcript.answer.startswith(DRAFT["answer"])


@pytest.mark.parametrize(
    ("asked", "search"),
    [
        (
            "Is Maria's order 55341 in a ticket?",
            {"name": "zendesk_search_tickets", "arguments": {"query": "order 55341", "limit": 1}},
        ),
        (
            "Check ticket 858, and if the customer confirmed the fix worked, mark it solved.",
            {
                "name": "gmail_search_threads",
                "arguments": {"query": "in:inbox subject:ticket 858", "limit": 1},
            },
        ),
    ],
    ids=["no tool reads orders", "the email about a ticket"],
)
def test_a_search_stays_a_search_unless_its_own_system_reads_the_record_named(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB, asked: str, search: dict[str, Any]
) -> None:
    """Only an id the person gave beside its kind, searched for in the system whose read
    tool reads that kind, is read: no tool reads Maria's order, and asked to check ticket
    858, the 1.5B model also searched Gmail for "subject:ticket 858", the email about the
    ticket, not the ticket."""
    transcript, _ = run(
        llm, registry, conn, [plan({**search, "reason": "Find it"}), DRAFT], asked=asked
    )

    assert [name for name, _ in transcript.tool_calls] == [search["name"]]


def test_a_plan_of_repeats_hears_which_records_the_results_name_and_no_call_read(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """Asked where Globex's renewal is, the 1.5B model read Hank's contact, whose record
    lists deal 9002, then searched the contacts again and again, and answered that the
    renewal "is associated with deal 9002". Its plan of repeats is told which records the
    results name that no call has read; it reads the deal."""
    read_deal = {
        "name": "hubspot_read_record",
        "arguments": {"record_type": "deal", "record_id": "9002"},
        "reason": "The renewal's stage",
    }
    transcript, sent = run(
        llm,
        registry,
        conn,
        [
            plan(GLOBEX_SEARCH),
            plan(READ_HANK),
            plan(GLOBEX_SEARCH),
            plan(read_deal),
            plan(),
            DRAFT,
        ],
        asked="Who is our contact at Globex, and where is their renewal?",
        template="sales",
        found=GLOBEX,
    )

    told = sent[3]["messages"][-1]["content"]
    assert "The results name records you have not read: company 3001, deal 9002." in told
    assert transcript.tool_calls[-1] == ("hubspot_read_record", read_deal["arguments"])


def test_a_read_planned_beside_the_search_that_becomes_it_is_made_once(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """The 1.5B model searched for "ticket:977" and read ticket 977 in the same plan: the
    search reads the ticket, and the ticket is read once, not twice."""
    search = {
        "name": "zendesk_search_tickets",
        "arguments": {"query": "ticket:977", "limit": 1},
        "reason": "Find it",
    }
    read = {"name": "zendesk_read_ticket", "arguments": {"ticket_id": 977}, "reason": "Read it"}
    transcript, sent = run(
        llm,
        registry,
        conn,
        [plan(search, read), plan(), DRAFT],
        asked="Summarise ticket 977 for me.",
        found={"zendesk_read_ticket": TICKET_977},
    )

    assert transcript.tool_calls == [("zendesk_read_ticket", {"ticket_id": 977})]
    assert sent[1]["messages"][-1]["content"].count("It arrived scratched.") == 1
