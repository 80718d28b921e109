"""The Verify step's verdict on a draft, as the loop persists and posts it: grounded
answers go out cited, invented facts do not, and the model is asked again only when that
could help."""

from __future__ import annotations

from bot.agent.loop import WAITING_ANSWER, AgentInput, _verdict, format_answer
from core.knowledge import Passage, ToolResult
from core.schemas import Draft
from guardrails.injection import wrap_untrusted
from rag.attribution import FLAG_NOTE, Grounding
from rag.citations import NOT_FOUND_ANSWER
from tests.support.processes import REPO

# As the loop gets them: screened and wrapped by the guardrails.
PASSAGES = [
    Passage(
        "vpn.md#1",
        "VPN access > Resetting a token",
        wrap_untrusted(
            "document",
            "VPN access > Resetting a token",
            "Open the self-service portal and choose Reset token. Scan the QR code with the "
            "authenticator app.",
        ),
    ),
    Passage(
        "refunds.md#1",
        "Refund policy",
        wrap_untrusted("document", "Refund policy", "Hardware can be returned within 45 days."),
    ),
]
REQUEST = AgentInput(1, "How do I reset my VPN token?", [])


def test_a_correct_draft_without_markers_is_posted_cited() -> None:
    draft = Draft(
        answer="Open the self-service portal and choose Reset token. Then scan the QR code.",
        citations=["1"],
    )

    verdict = _verdict(draft, PASSAGES, [], REQUEST, Grounding())

    assert verdict["problems"] == [] and not verdict["not_found"]
    posted = format_answer(Draft(answer=verdict["answer"], citations=[]), PASSAGES)
    assert posted == (
        "Open the self-service portal and choose Reset token [1]. Then scan the QR code [1]."
        "\n\n*Sources*\n[1] VPN access &gt; Resetting a token"
    )


def test_unsupported_sentences_are_flagged_when_the_setting_says_so() -> None:
    draft = Draft(answer="Choose Reset token in the portal. It costs 5 euros.", citations=[])

    verdict = _verdict(draft, PASSAGES, [], REQUEST, Grounding(unsupported="flag"))

    assert (
        verdict["answer"] == f"Choose Reset token in the portal [1]. It costs 5 euros. {FLAG_NOTE}"
    )
    assert verdict["unsupported"] == [{"sentence": "It costs 5 euros.", "why": "5 is in no source"}]


def test_a_draft_of_invented_facts_is_asked_again_with_the_reason() -> None:
    draft = Draft(answer="Call the helpdesk at extension 4411 [2].", citations=["2"])

    verdict = _verdict(draft, PASSAGES, [], REQUEST, Grounding())

    assert verdict["citations_failed"] and verdict["answer"] == NOT_FOUND_ANSWER
    (problem,) = verdict["problems"]
    assert "extension 4411" in problem and "4411 is in no source" in problem


def test_the_models_own_not_found_is_not_asked_again() -> None:
    draft = Draft(answer="Sorry, the sources don't cover this [1].", citations=["1"])

    verdict = _verdict(draft, PASSAGES, [], REQUEST, Grounding())

    assert verdict["problems"] == [] and verdict["not_found"]
    assert verdict["answer"] == NOT_FOUND_ANSWER and verdict["citations"] == []


def test_facts_from_a_tool_result_stand_without_a_marker() -> None:
    """The model looked up a deal, then wrote about it: grounded in the tool's result."""
    deal = ToolResult(
        "hubspot_get_deal",
        ok=True,
        output=wrap_untrusted(
            "tool result", "hubspot", '{"name": "Acme renewal", "amount": 12000}'
        ),
    )
    draft = Draft(answer="The Acme renewal is worth 12000.", citations=[])

    verdict = _verdict(draft, PASSAGES, [deal], REQUEST, Grounding())

    assert verdict["answer"] == "The Acme renewal is worth 12000." and verdict["problems"] == []


def test_a_draft_of_markers_alone_is_never_posted() -> None:
    """A small model looping on "[1][2]..." wrote no words: asked again, never posted
    empty."""
    draft = Draft(answer="[1][2][1][2][1][2][1][2]", citations=["1", "2"])

    verdict = _verdict(draft, PASSAGES, [], REQUEST, Grounding())

    assert verdict["citations_failed"] and verdict["answer"] == NOT_FOUND_ANSWER
    assert verdict["problems"][0].startswith("nothing in it is supported by the numbered sources.")


def test_a_reply_about_a_proposed_action_is_posted_with_sources_retrieved() -> None:
    """The search found passages, but the reply is about the email the run proposed:
    saying it waits for approval is not a fact the documents must hold."""
    proposed = ToolResult(
        "send_email", ok=True, output="Waiting for approval, not done yet: action 7, Send an email."
    )
    draft = Draft(
        answer="I've drafted the email to the customer; it is waiting for approval.", citations=[]
    )

    verdict = _verdict(draft, PASSAGES, [proposed], REQUEST, Grounding())

    assert verdict["problems"] == [] and verdict["answer"] == draft.answer


# What the real 1.5B model wrote after proposing both actions, each waiting for approval.
SOLVE = AgentInput(
    1, "Tell the customer on ticket 42 that their refund was sent today, and mark it solved.", []
)
PROPOSED = [
    ToolResult(
        "zendesk_add_comment",
        True,
        "Waiting for approval, not done yet: Reply on #42.",
        awaits_approval=True,
    ),
    ToolResult(
        "zendesk_set_status",
        True,
        "Waiting for approval, not done yet: Solve #42.",
        awaits_approval=True,
    ),
]


def test_a_reply_never_says_an_action_waiting_for_approval_is_done() -> None:
    draft = Draft(
        answer="The customer on ticket 42 was informed that their refund was sent today. "
        "The ticket is marked as solved.",
        citations=[],
    )

    verdict = _verdict(draft, [], PROPOSED, SOLVE, Grounding())

    assert verdict["problems"] == [] and not verdict["not_found"]
    assert verdict["answer"] == WAITING_ANSWER
    assert "marked as solved" not in verdict["answer"]


def test_what_is_true_of_waiting_actions_stays_and_what_the_person_said_is_theirs() -> None:
    draft = Draft(
        answer="Their refund was sent today. I've prepared the reply and the status change; "
        "both are waiting for approval. The ticket is now solved.",
        citations=[],
    )

    verdict = _verdict(draft, [], PROPOSED, SOLVE, Grounding())

    assert verdict["answer"] == (
        "Their refund was sent today. I've prepared the reply and the status change; "
        "both are waiting for approval."
    )


def test_once_actions_are_done_a_reply_may_say_so() -> None:
    done = [ToolResult("zendesk_set_status", True, "Ticket #42 is now solved.")]
    draft = Draft(answer="The ticket is marked as solved.", citations=[])

    verdict = _verdict(draft, [], done, SOLVE, Grounding())

    assert verdict["answer"] == "The ticket is marked as solved."


def test_a_draft_that_also_invents_facts_is_asked_again_while_actions_wait() -> None:
    draft = Draft(answer="The ticket is marked as solved. Refunds take 2 days [4].", citations=[])

    verdict = _verdict(draft, [], PROPOSED, SOLVE, Grounding())

    (problem,) = verdict["problems"]
    assert "2 is in no source" in problem and verdict["answer"] != WAITING_ANSWER


def test_a_reply_never_tells_people_the_agents_tool_names() -> None:
    """The 1.5B model told a person to "call the `hubspot_add_contact_note` tool": a
    sentence naming one of the agent's tools goes; the rest of the reply stays."""
    draft = Draft(
        answer="Their refund was sent today. I've prepared the reply; it is waiting for "
        "approval. You can also call `zendesk_set_status` yourself to solve it.",
        citations=[],
    )

    verdict = _verdict(
        draft, [], PROPOSED, SOLVE, Grounding(), ["zendesk_add_comment", "zendesk_set_status"]
    )

    assert verdict["problems"] == []
    assert verdict["answer"] == (
        "Their refund was sent today. I've prepared the reply; it is waiting for approval."
    )


def test_a_reply_left_with_nothing_once_tool_names_go_says_where_the_actions_stand() -> None:
    draft = Draft(answer="I called zendesk_add_comment and zendesk_set_status.", citations=[])

    verdict = _verdict(
        draft, [], PROPOSED, SOLVE, Grounding(), ["zendesk_add_comment", "zendesk_set_status"]
    )

    assert verdict["problems"] == [] and verdict["answer"] == WAITING_ANSWER


def test_a_reply_that_only_repeats_the_message_says_where_the_actions_stand() -> None:
    """With both actions proposed, the 1.5B model's whole reply was "The message to reply
    to is: " and the person's own message. A person learns nothing from their own words:
    the reply says the actions wait for approval."""
    draft = Draft(
        answer=f"The message to reply to is: {SOLVE.question}",
        citations=[],
    )

    verdict = _verdict(draft, [], PROPOSED, SOLVE, Grounding())

    assert verdict["problems"] == [] and verdict["answer"] == WAITING_ANSWER
    assert (
        verdict["unsupported"][0]["why"] == "repeats the person's message instead of answering it"
    )


def test_a_draft_that_only_repeats_the_question_is_written_again() -> None:
    question = "Can a customer on an annual plan get a refund after three weeks?"
    draft = Draft(answer=question, citations=[])

    verdict = _verdict(draft, PASSAGES, [], AgentInput(1, question, []), Grounding())

    assert verdict["citations_failed"]
    assert "repeats the person's message" in verdict["problems"][0]


def test_an_answer_in_the_question_s_words_is_not_taken_for_a_repeat() -> None:
    question = "Can hardware be returned within 45 days of delivery?"
    draft = Draft(answer="Yes, hardware can be returned within 45 days [2].", citations=["2"])

    verdict = _verdict(draft, PASSAGES, [], AgentInput(1, question, []), Grounding())

    assert verdict["problems"] == []
    assert verdict["answer"] == "Yes, hardware can be returned within 45 days [2]."


def test_a_draft_that_opens_with_not_found_is_posted_as_not_found_without_sources() -> None:
    """Asked for the Leeds warehouse's Wi-Fi password, the 1.5B model wrote that it is
    "not provided in the company's knowledge base", then quoted another page: the person
    got the quote, cited, under a Sources list. What follows "not found" answers
    something else."""
    question = "What's the Wi-Fi password at the Leeds warehouse?"
    draft = Draft(
        answer="The Wi-Fi password at the Leeds warehouse is not provided in the company's "
        "knowledge base. The portal says: open the self-service portal and choose Reset token.",
        citations=["1"],
    )

    verdict = _verdict(draft, PASSAGES, [], AgentInput(1, question, []), Grounding())

    assert verdict["problems"] == [] and verdict["not_found"]
    assert verdict["answer"] == NOT_FOUND_ANSWER and verdict["citations"] == []


def sample_passage(name: str, title: str) -> Passage:
    """A page of the sandbox's sample knowledge, as the loop gets it."""
    text = (REPO / "sandbox" / "sample_knowledge" / name).read_text()
    return Passage(f"{name}#0", title, wrap_untrusted("document", title, text))


def test_a_bare_yes_or_no_is_posted_with_the_source_line_it_rests_on() -> None:
    """The 1.5B model answered "No, you cannot book first class for a two-hour train
    journey." and nothing more. The reply quotes the rule from the source beneath it, so
    the person sees why and can check it."""
    passages = [sample_passage("expenses.md", "Expenses and travel")]
    asked = AgentInput(1, "Can I book first class for a two-hour train journey?", [])
    draft = Draft(
        answer="No, you cannot book first class for a two-hour train journey.", citations=["1"]
    )

    verdict = _verdict(draft, passages, [], asked, Grounding())

    posted = format_answer(
        Draft(answer=verdict["answer"], citations=verdict["citations"]), passages
    )
    assert posted == (
        "No, you cannot book first class for a two-hour train journey [1].\n\n"
        "> Trains: standard class; first class only for journeys over 3 hours. [1]"
        "\n\n*Sources*\n[1] Expenses and travel"
    )


def test_an_answer_that_gives_its_reason_is_posted_as_written() -> None:
    passages = [sample_passage("expenses.md", "Expenses and travel")]
    asked = AgentInput(1, "Can I book first class for a two-hour train journey?", [])
    draft = Draft(
        answer="No: first class is only for train journeys over 3 hours [1].", citations=["1"]
    )

    verdict = _verdict(draft, passages, [], asked, Grounding())

    assert verdict["answer"] == draft.answer


def test_a_bare_no_gets_no_source_line() -> None:
    """Asked whether customers can pay for a repair in instalments, which no source says,
    the 1.5B model answered "No": a quote of the repair price beneath it would make it
    look answered from the sources."""
    passages = [sample_passage("warranty.md", "Warranty and repairs")]
    asked = AgentInput(1, "Can customers pay for an out-of-warranty repair in instalments?", [])

    verdict = _verdict(Draft(answer="No", citations=[]), passages, [], asked, Grounding())

    assert ">" not in verdict["answer"] and verdict["citations"] == []
