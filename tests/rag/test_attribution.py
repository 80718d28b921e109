"""Grounding a draft sentence by sentence: what a small model writes (right facts, no or
wrong [n] markers) is kept and cited; what no source says is taken out.

Run with the worker's own embedder (all-MiniLM-L6-v2), with none (word overlap alone), and
with the OpenAI emulator's embedder, whose vectors are hashes of the text and carry no
meaning (what stack tests get with RAG_EMBEDDING_PROVIDER=openai).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pytest

from core.knowledge import Passage
from guardrails.injection import wrap_untrusted
from rag.attribution import FLAG_NOTE, Evidence, attribute
from rag.citations import evidence
from rag.embeddings import Embedder, LocalEmbedder, Vectors
from sandbox.openai_wire import embedding_vector
from tests.support.processes import REPO

VPN = Evidence(
    "VPN access > Resetting a token\n"
    "To reset your VPN token, open the self-service portal and choose Reset token. "
    "Scan the QR code with the authenticator app.",
    1,
)
SUPPORT = Evidence(
    "VPN access > Locked accounts\n"
    "If your account is locked after five failed attempts, ask in #support. "
    "Tokens expire every 90 days.",
    2,
)
REFUNDS = Evidence(
    "Refund policy > Hardware\n"
    "Customers may return hardware within 45 days of delivery for a full refund.",
    3,
)
SOURCES = [VPN, SUPPORT, REFUNDS]
QUESTION = "How do I reset my VPN token?"

# What Qwen2.5-Coder-1.5B wrote for this question: right, with no marker on any line.
UNMARKED = (
    "To reset your VPN token:\n"
    "1. Open the self-service portal and choose Reset token.\n"
    "2. Scan the QR code with your authenticator app.\n"
    "3. If your account is locked, ask in #support."
)


class HashEmbedder:
    """The emulator's embeddings: the same text gives the same unit vector, any two
    different texts are unrelated."""

    model_name = "emulator-embedding"
    dimensions = 256

    def embed(self, texts: Sequence[str]) -> Vectors:
        rows = [embedding_vector(text, self.dimensions) for text in texts]
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dimensions)


@pytest.fixture(params=["minilm", "none", "hash"])
def any_embedder(request: pytest.FixtureRequest) -> Embedder | None:
    if request.param == "minilm":
        embedder: LocalEmbedder = request.getfixturevalue("embedder")
        return embedder
    return HashEmbedder() if request.param == "hash" else None


def test_a_correct_draft_without_markers_gets_them_added(any_embedder: Embedder | None) -> None:
    result = attribute(UNMARKED, SOURCES, question=QUESTION, embedder=any_embedder)

    assert result.answer == (
        "To reset your VPN token:\n"
        "1. Open the self-service portal and choose Reset token [1].\n"
        "2. Scan the QR code with your authenticator app [1].\n"
        "3. If your account is locked, ask in #support [2]."
    )
    assert result.cited == [1, 2] and not result.unsupported and not result.answers_nothing


def test_markers_the_model_got_right_are_kept_as_written_and_wrong_ones_repaired(
    any_embedder: Embedder | None,
) -> None:
    draft = "Tokens expire every 90 days. [2] Open the portal and choose Reset token [3]."

    result = attribute(draft, SOURCES, question=QUESTION, embedder=any_embedder)

    assert result.answer == (
        "Tokens expire every 90 days. [2] Open the portal and choose Reset token [1]."
    )


def test_a_number_no_source_has_takes_the_sentence_out(any_embedder: Embedder | None) -> None:
    """90 days is not 45 days, however alike the sentences are in meaning."""
    draft = (
        "Open the portal and choose Reset token [1]. You can return hardware within 90 days [3]."
    )

    result = attribute(draft, SOURCES, question=QUESTION, embedder=any_embedder)

    assert result.answer == "Open the portal and choose Reset token [1]."
    (dropped,) = result.unsupported
    assert "90" in dropped.text and "90" in dropped.reason
    assert result.cited == [1]


def test_a_number_the_person_gave_needs_no_source(any_embedder: Embedder | None) -> None:
    """Repeating the question's own number ("after 60 days") states nothing new: the
    sentence stands on the source's 45 days; a number from nowhere still does not."""
    question = "Can a customer return hardware after 60 days?"
    draft = "No: hardware can be returned within 45 days, so 60 days is too late."

    result = attribute(draft, SOURCES, question=question, embedder=any_embedder)

    assert result.unsupported == []
    assert "45 days" in result.answer and "60 days" in result.answer
    assert result.cited == [3]
    invented = attribute(draft.replace("60", "75"), SOURCES, question=question)
    assert invented.unsupported


def test_a_yes_or_no_about_what_no_source_mentions_is_not_an_answer(
    any_embedder: Embedder | None,
) -> None:
    """What the 1.5B model wrote when asked about a free trial the sources never mention:
    both "yes" and "no" go, however much else ("Widget Cloud") the source shares; a
    sentence the source does support stays."""
    widget_cloud = Evidence(
        "Widget Cloud for business customers\n"
        "Widget Cloud is the dashboard business customers use to manage their widgets. "
        "It is sold per seat, billed annually, with a minimum of 10 seats.",
        1,
    )
    question = "Do we offer a free trial of Widget Cloud?"

    for claim in ("No, we do not offer a free trial of Widget Cloud.", "Yes, we offer one."):
        result = attribute(claim, [widget_cloud], question=question, embedder=any_embedder)
        assert result.answer == ""
    supported = attribute(
        "Widget Cloud is sold per seat, with a minimum of 10 seats.",
        [widget_cloud],
        question=question,
        embedder=any_embedder,
    )
    assert supported.answer == "Widget Cloud is sold per seat, with a minimum of 10 seats [1]."


def test_an_answer_that_leads_with_what_no_source_mentions_answers_nothing(
    any_embedder: Embedder | None,
) -> None:
    """Asked about parental leave, the 1.5B model wrote "Our parental leave policy is
    that everyone gets 25 days of holiday..." and went on copying the holiday page: true
    sentences, but about another question. The person is told it was not found."""
    holidays = Evidence(
        "Holidays and leave\nEveryone gets 25 days of holiday a year plus UK bank "
        "holidays. The holiday year runs from 1 January to 31 December.",
        1,
    )
    draft = (
        "Our parental leave policy is that everyone gets 25 days of holiday a year. "
        "The holiday year runs from 1 January to 31 December."
    )

    result = attribute(
        draft, [holidays], question="What is our parental leave policy?", embedder=any_embedder
    )

    assert result.answers_nothing
    (lead,) = result.unsupported
    assert "parental" in lead.reason
    asked_about_holidays = attribute(
        "Everyone gets 25 days of holiday a year.",
        [holidays],
        question="How many days of holiday do we get?",
        embedder=any_embedder,
    )
    assert not asked_about_holidays.answers_nothing


def test_an_answer_in_other_words_than_the_question_keeps_its_source(
    any_embedder: Embedder | None,
) -> None:
    """One word of the question that the source puts differently does not take it out."""
    question = "How long do customers have to send hardware back?"
    draft = "Customers may return hardware within 45 days of delivery."

    result = attribute(draft, SOURCES, question=question, embedder=any_embedder)

    assert result.answer == "Customers may return hardware within 45 days of delivery [3]."


def test_digits_inside_an_id_the_person_wrote_do_not_vouch_for_a_number(
    any_embedder: Embedder | None,
) -> None:
    """A ticket id such as "a3f9c2" gives no "3": an invented "3 working days" still goes."""
    question = "How do hardware refunds work? [ticket a3f9c2]"
    draft = "Hardware can be returned within 45 days. The refund arrives within 3 working days."

    result = attribute(draft, SOURCES, question=question, embedder=any_embedder)

    assert "45 days" in result.answer and "3 working days" not in result.answer
    (dropped,) = result.unsupported
    assert "3" in dropped.reason


def test_a_draft_whose_facts_come_from_nowhere_answers_nothing(
    any_embedder: Embedder | None,
) -> None:
    """Invented names and numbers, with made-up markers: nothing is left to post."""
    draft = (
        "Hi! We ship to Switzerland within two days [3].\nCall the helpdesk at extension 4411 [7]."
    )

    result = attribute(draft, SOURCES, question="Do we ship to Switzerland?", embedder=any_embedder)

    assert result.answers_nothing
    assert "Switzerland" not in result.answer and "4411" not in result.answer
    assert result.cited == []


def test_flagged_instead_of_dropped_when_the_setting_says_so() -> None:
    draft = "Open the portal and choose Reset token. Then call extension 4411."

    result = attribute(draft, SOURCES, question=QUESTION, unsupported="flag")

    assert result.answer == (
        f"Open the portal and choose Reset token [1]. Then call extension 4411. {FLAG_NOTE}"
    )


def test_a_paraphrase_is_recognised_by_meaning_when_the_embedder_knows_language(
    embedder: LocalEmbedder,
) -> None:
    """Few shared words, same meaning: supported with the worker's embedder; word overlap
    alone does not see it (and then the sentence is not posted)."""
    draft = "When you're locked out, get help in the support channel."

    with_meaning = attribute(draft, SOURCES, question=QUESTION, embedder=embedder)
    words_only = attribute(draft, SOURCES, question=QUESTION)

    assert with_meaning.answer == "When you're locked out, get help in the support channel [2]."
    assert words_only.answers_nothing


def test_a_sentence_spanning_two_sources_cites_both(any_embedder: Embedder | None) -> None:
    draft = "Choose Reset token in the portal and ask in #support if your account is locked."

    result = attribute(draft, SOURCES, question=QUESTION, embedder=any_embedder)

    assert result.cited == [1, 2] and "[1][2]." in result.answer


def test_greetings_lead_ins_questions_and_courtesy_state_no_fact() -> None:
    draft = (
        "Hi there!\n"
        "*Resetting your token*\n"
        "To reset your VPN token, here is what to do:\n"
        "Open the portal and choose Reset token.\n"
        "Do you use the desktop app?\n"
        "Let me know if you need anything else."
    )

    result = attribute(draft, SOURCES, question=QUESTION)

    assert [s.kind for s in result.sentences] == [
        "chatter",
        "chatter",
        "chatter",
        "fact",
        "chatter",
        "chatter",
    ]
    assert result.answer == draft.replace("Reset token.", "Reset token [1].")


def test_a_fact_from_a_tool_result_is_kept_without_a_marker() -> None:
    """Facts the model read from a tool (no number to cite) are grounded too."""
    deal = Evidence('{"deal": "Northwind renewal", "amount": 12000, "stage": "negotiation"}')
    draft = "The Northwind renewal is in negotiation, at 12000."

    result = attribute(draft, [*SOURCES, deal], question="Where is the Northwind deal?")

    assert result.answer == draft and not result.unsupported and result.cited == []


def test_not_found_in_the_models_own_words_cites_nothing() -> None:
    result = attribute(
        "Sorry, I couldn\u2019t find this in the knowledge base [1][2].", SOURCES, question=QUESTION
    )

    assert result.says_not_found and result.answers_nothing
    assert result.cited == [] and "[" not in result.answer


def test_a_runaway_string_of_markers_is_not_posted() -> None:
    """A small model looping on "[1][2]...[8]" after its answer: the markers go, the
    answer stays cited once."""
    draft = "Open the portal and choose Reset token [1]. [1][2][3][4][5][6][7][8]"

    result = attribute(draft, SOURCES, question=QUESTION)

    assert result.answer == "Open the portal and choose Reset token [1]."


def test_without_sources_only_sentences_claiming_one_are_judged() -> None:
    """Nothing retrieved: the reply is not an answer from the knowledge base (a summary
    of the thread, a rewording), so unmarked sentences stand; a claimed source does not."""
    draft = "Here is a shorter version of your message. Refunds take 90 days [4]."

    result = attribute(draft, [], question="Shorten this", strict=False)

    assert result.answer == "Here is a shorter version of your message."


def test_step_numbers_and_number_formats_are_not_taken_for_facts() -> None:
    """ "Step 3:" and an inline "2." number the steps; "8:00" is the source's "08:00"."""
    hours = Evidence("IT unlocks accounts during business hours (08:00-18:00 UK time).", 4)
    draft = (
        "Step 3: Open the self-service portal and choose Reset token. "
        "2. Scan the QR code with your authenticator app. IT unlocks accounts from 8:00 to 18:00."
    )

    result = attribute(draft, [*SOURCES, hours], question=QUESTION)

    assert not result.unsupported
    assert result.answer == (
        "Step 3: Open the self-service portal and choose Reset token [1]. "
        "2. Scan the QR code with your authenticator app [1]. "
        "IT unlocks accounts from 8:00 to 18:00 [4]."
    )


def test_declining_and_reporting_on_actions_are_not_facts_to_find_in_the_sources() -> None:
    """A refusal is about the assistant; once the run proposed an action, so is saying
    it waits for approval. Without an action, that claim is judged like any other."""
    decline = "Sorry, I can't share other people's VPN tokens."
    report = (
        "I've drafted the email to <EMAIL_1> about the renewal, and it is waiting for approval."
    )

    assert attribute(decline, SOURCES, question=QUESTION).answer == decline
    acted = attribute(report, SOURCES, question="Email them", acted=True)
    assert acted.answer == report and not acted.answers_nothing
    assert attribute(report, SOURCES, question="Email them").answers_nothing


def test_short_list_items_and_short_lines_with_numbers_are_facts() -> None:
    """Small models write steps without full stops; they are grounded like sentences, and
    a short line with a number is no heading."""
    draft = "*Resetting your token*\n- Choose Reset token in the portal\n- Call extension 4411\nTokens last 90 days"

    result = attribute(draft, SOURCES, question=QUESTION)

    assert result.answer == (
        "*Resetting your token*\n- Choose Reset token in the portal [1]\nTokens last 90 days [2]"
    )


def test_numbers_and_names_the_person_gave_may_be_applied_but_prove_nothing() -> None:
    """A number from the question ("after 14 months") may be applied to a source; a name
    from it may not: a page about shipping elsewhere does not say "we ship to
    Switzerland"."""
    warranty = Evidence("Widgets have a 2-year warranty. Batteries are covered for 12 months.", 4)
    shipping = Evidence("We ship from Rotterdam to the EU, the UK and Norway.", 5)

    applied = attribute(
        "No: batteries are covered for 12 months, so at 14 months it is outside the warranty.",
        [warranty, shipping],
        question="Is a battery that died after 14 months still under warranty?",
    )
    assert applied.cited == [4] and not applied.unsupported

    echoed = attribute(
        "Yes, we ship to Switzerland.", [warranty, shipping], question="Do we ship to Switzerland?"
    )
    assert echoed.answers_nothing


def test_citations_written_another_way_become_markers() -> None:
    draft = (
        "Open the portal and choose Reset token (Source 1). "
        "If your account is locked, ask in #support [Source: 2]. "
        "Scan the QR code with the authenticator app [1, 2]."
    )

    result = attribute(draft, SOURCES, question=QUESTION)

    assert result.answer == (
        "Open the portal and choose Reset token [1]. "
        "If your account is locked, ask in #support [2]. "
        "Scan the QR code with the authenticator app [1]."
    )


def test_a_lead_in_naming_the_sources_does_not_count_against_the_sentence() -> None:
    """Small models open with "Based on the provided information": those words say where
    the fact is from, they are not part of it."""
    draft = (
        "Based on the provided information, you scan the QR code with the authenticator app. "
        "According to [2], locked accounts ask in #support."
    )

    result = attribute(draft, SOURCES, question=QUESTION)

    assert not result.unsupported and result.cited == [1, 2]


def test_a_source_fact_pinned_on_something_the_source_never_names_is_unsupported() -> None:
    """Asked about a plan the price list does not have, a small model gives another
    plan's price: the name from the question is in no source, so nothing is posted."""
    prices = Evidence(
        "Widget Cloud for business customers\nPrices (list, per seat per month): "
        "Standard: 12 GBP. Plus (adds audit logs and API access): 18 GBP.",
        1,
    )
    draft = "The Widget Cloud Enterprise plan costs 18 GBP per seat per month [1]."

    result = attribute(
        draft, [prices], question="What is the list price of the Widget Cloud Enterprise plan?"
    )

    assert result.answers_nothing and "enterprise" in result.unsupported[0].reason


def test_an_answer_that_asks_the_question_back_in_its_own_words_keeps_its_source(
    embedder: LocalEmbedder,
) -> None:
    """The 1.5B model's right answer to the mileage question was taken out because
    "rate", "use" and "work", words of the question, are in no source: the person was
    told it was not found. The source's sentence means the same, 45p and all; a sentence
    with another number, or another topic, is still taken out."""
    expenses = Evidence(
        "Expenses and travel\nMileage in your own car is paid at 45p per mile. "
        "Reimbursements are paid with the next monthly payroll run on the 25th.",
        1,
    )
    question = "What is the mileage rate when I use my own car for work?"

    def kept(draft: str) -> str:
        return attribute(draft, [expenses], question=question, embedder=embedder).answer

    assert kept("The mileage rate when you use your own car for work is 45p per mile.") == (
        "The mileage rate when you use your own car for work is 45p per mile [1]."
    )
    assert kept("The mileage rate when you use your own car for work is 60p per mile.") == ""
    assert kept("The rate when you use a rental car for work is paid on the 25th.") == ""


def test_a_draft_caught_in_a_loop_says_each_sentence_once(any_embedder: Embedder | None) -> None:
    """The 1.5B model wrote the same two sentences until its token cap: the person reads
    them once."""
    looped = (
        "To reset your VPN token, open the self-service portal and choose Reset token [1]. "
        "Scan the QR code with the authenticator app [1]. "
    ) * 4

    result = attribute(looped, SOURCES, question=QUESTION, embedder=any_embedder)

    assert result.answer == (
        "To reset your VPN token, open the self-service portal and choose Reset token [1]. "
        "Scan the QR code with the authenticator app [1]."
    )


DISCOUNTS = Evidence(
    "Widget Cloud > Discounts and quotes\n"
    "Account executives may give up to 10% off list for 100 seats or more. Anything above "
    "that needs the sales director's approval (Morgan).",
    4,
)


ASKED_DISCOUNT = "How much discount can I give a customer buying 150 seats without asking anyone?"


def test_an_answer_in_the_askers_words_about_who_to_ask_is_kept(
    any_embedder: Embedder | None,
) -> None:
    """What the 1.5B model answered: right, and in the question's words ("without asking
    anyone"), which no source has. Words that name no topic do not make it off-topic."""
    draft = "You can give up to 10% discount without asking anyone."

    result = attribute(draft, [*SOURCES, DISCOUNTS], question=ASKED_DISCOUNT, embedder=any_embedder)

    assert result.answer == "You can give up to 10% discount without asking anyone [4]."


def test_the_same_answer_in_other_words_is_kept_by_its_meaning(embedder: LocalEmbedder) -> None:
    """With fewer of the source's words, the worker's embedder still finds its source."""
    draft = "A customer buying 150 seats can get up to 10% off without asking anyone [4]."

    result = attribute(draft, [*SOURCES, DISCOUNTS], question=ASKED_DISCOUNT, embedder=embedder)

    assert result.answer == draft


def test_a_plan_the_person_asked_about_is_not_forgiven_for_sharing_the_rest_of_the_words(
    embedder: LocalEmbedder,
) -> None:
    """The real model's answer, once posted as "not found"'s opposite: with the sales
    knowledge's price list, every other word of "... Enterprise plan is 18 GBP per seat
    per month, billed annually" is in the source, where 18 GBP is the Plus plan's. A name
    the person asked about that no source has is never forgiven."""
    lines = (REPO / "templates" / "golden" / "sales.jsonl").read_text().splitlines()
    case = next(c for c in map(json.loads, lines) if c["id"] == "sales-enterprise-price-not-found")
    passages = [
        Passage(p["id"], p["title"], wrap_untrusted("document", p["title"], p["text"]))
        for p in case["passages"]
    ]
    draft = (
        "The list price of the Widget Cloud Enterprise plan is 18 GBP per seat per month, "
        "billed annually."
    )

    result = attribute(draft, evidence(passages, []), question=case["request"], embedder=embedder)

    assert result.answers_nothing and result.answer == ""
    assert result.unsupported[0].reason == "enterprise is in no source"


def test_advice_that_opens_with_the_person_s_own_situation_is_kept(
    embedder: LocalEmbedder,
) -> None:
    """Asked "I left my work laptop on the train. What do I do?", the 1.5B model wrote
    the right advice after "If you left your work laptop on the train, ...", and the
    reply was "not found" because no source mentions "left" or "train". An opening
    condition in the question's words is the person's situation, not a claim."""
    text = (REPO / "sandbox" / "sample_knowledge" / "security.md").read_text()
    title = "Passwords, laptops and security incidents"
    passages = [Passage("security.md#0", title, wrap_untrusted("document", title, text))]
    draft = (
        "If you left your work laptop on the train, you should immediately contact IT at "
        "security@northwind.example to report the loss."
    )

    result = attribute(
        draft,
        evidence(passages, []),
        question="I left my work laptop on the train. What do I do?",
        embedder=embedder,
    )

    assert not result.answers_nothing
    assert result.answer == f"{draft[:-1]} [1]."


def test_an_opening_condition_does_not_excuse_a_topic_no_source_covers(
    embedder: LocalEmbedder,
) -> None:
    """The condition is the person's; the claim after it still needs a source that
    speaks of what they asked about."""
    text = (REPO / "sandbox" / "sample_knowledge" / "refunds.md").read_text()
    passages = [Passage("refunds.md#0", "Refund policy", wrap_untrusted("document", "R", text))]
    draft = "If you are a repeat customer, widgets get a loyalty discount on every order."

    result = attribute(
        draft,
        evidence(passages, []),
        question="Do repeat customers get a loyalty discount on widgets?",
        embedder=embedder,
    )

    assert result.answers_nothing


def _meals_case() -> tuple[list[Evidence], str]:
    lines = (REPO / "templates" / "golden" / "knowledge.jsonl").read_text().splitlines()
    case = next(c for c in map(json.loads, lines) if c["id"] == "knowledge-meals-follow-up")
    passages = [Passage(p["id"], p["title"], p["text"], None) for p in case["passages"]]
    earlier = [turn["content"] for turn in case["thread"]]
    return evidence(passages, earlier), case["request"]


def test_a_figure_the_source_gives_for_something_else_is_not_supported(
    any_embedder: Embedder | None,
) -> None:
    """Asked how much they may spend on meals in Leeds, the 1.5B model answered "up to 100
    GBP on meals", cited to the expenses page: 100 GBP is there, as the hotel limit
    outside London; meals are 40 GBP a day."""
    sources, question = _meals_case()
    draft = "You can spend up to 100 GBP on meals when traveling to Leeds [1]."

    result = attribute(draft, sources, question=question, embedder=any_embedder)

    assert result.answer == ""
    assert result.unsupported[0].reason == "100 is said there of something else"


def test_figures_from_two_lines_of_a_source_are_each_kept_beside_their_own_words(
    any_embedder: Embedder | None,
) -> None:
    sources, question = _meals_case()
    draft = "Hotels are up to 140 GBP a night in London, and meals up to 40 GBP a day [1]."

    result = attribute(draft, sources, question=question, embedder=any_embedder)

    assert result.answer == draft


def test_a_sentence_repeating_the_templates_instructions_is_taken_out() -> None:
    """Asked to log a note and email a quote, the 1.5B model wrote the sales template's
    rules into the reply; the sentence about the note stays."""
    instructions = (
        "Outreach email is short, specific to the person's company and deal, and never\n"
        "promises prices or discounts the requester did not give you. Before you invite\n"
        "anyone to a meeting, check their free/busy for that time."
    )
    draft = (
        "The note on Hank's record is waiting for approval. The outreach email is short, "
        "specific to the person's company and deal, and never promises prices or discounts "
        "the requester did not give you. Before inviting anyone to a meeting, check their "
        "free/busy for that time."
    )

    result = attribute(
        draft,
        [],
        question="Log on Hank's record that he wants 50 seats.",
        strict=False,
        acted=True,
        instructions=instructions,
    )

    assert result.answer == "The note on Hank's record is waiting for approval."
    assert {s.reason for s in result.unsupported} == {
        "repeats the assistant's own instructions instead of answering"
    }
