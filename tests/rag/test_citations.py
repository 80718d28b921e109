"""The citation rules the Verify step applies, and the sources list under an answer."""

from __future__ import annotations

from bot.agent.knowledge import Passage
from rag.citations import (
    NOT_FOUND_ANSWER,
    format_sources,
    sources_for_prompt,
    verify_citations,
)

PASSAGES = [
    Passage(
        "101", "Support FAQ > Refunds", "Refunds within 30 days.", "https://help.example.com/faq"
    ),
    Passage("205", "Employee Handbook > Travel", "Book flights 14 days ahead.", None),
]


def test_an_answer_citing_a_source_it_was_not_given_is_rejected() -> None:
    """Citing [3] when only two sources were given is a problem that names [3] and the
    numbers that may be cited."""
    problems = verify_citations("Refunds take 30 days [3].", ["3"], PASSAGES)

    assert len(problems) == 1
    assert "[3]" in problems[0] and "1 to 2" in problems[0]


def test_a_citation_listed_but_not_given_is_rejected_even_if_the_text_is_clean() -> None:
    """The citations list is checked as well as the inline markers."""
    assert verify_citations("Refunds take 30 days [1].", ["1", "7"], PASSAGES) != []


def test_any_citation_is_rejected_when_no_sources_were_given() -> None:
    """With no sources, every citation is invented."""
    (problem,) = verify_citations("Refunds take 30 days [1].", ["1"], [])
    assert "no sources were given" in problem


def test_facts_without_citations_are_rejected_when_sources_exist() -> None:
    """A statement with no [n] while sources were given is a problem quoting it."""
    answer = "Refunds are possible within 30 days [1].\n\nFlights must be booked two weeks ahead."

    (problem,) = verify_citations(answer, ["1"], PASSAGES)

    assert "without citing" in problem
    assert "Flights must be booked two weeks ahead." in problem


def test_a_fully_cited_answer_passes() -> None:
    """Every statement cited, with lead-ins and a short list, passes."""
    answer = (
        "Here is what applies:\n"
        "• Refunds are accepted within 30 days [1].\n"
        "• Flights are booked 14 days ahead [2].\n"
        "Anything else?"
    )
    assert verify_citations(answer, ["1", "2"], PASSAGES) == []


def test_saying_nothing_was_found_passes_without_citations() -> None:
    """The fallback answer is always acceptable: better than a guess."""
    assert verify_citations(NOT_FOUND_ANSWER, [], PASSAGES) == []


def test_sources_are_numbered_for_the_model_in_retrieval_order() -> None:
    """The model sees sources numbered from 1, with titles and texts, never raw ids."""
    assert sources_for_prompt(PASSAGES) == [
        {"number": 1, "title": "Support FAQ > Refunds", "text": "Refunds within 30 days."},
        {"number": 2, "title": "Employee Handbook > Travel", "text": "Book flights 14 days ahead."},
    ]


def test_a_slack_answer_ends_with_its_numbered_sources_titles_and_links() -> None:
    """Only cited sources are listed, under the numbers used in the text, linked when
    they have a link."""
    text = format_sources(
        "Book 14 days ahead [2]; refunds within 30 days [1].", ["2", "1"], PASSAGES
    )

    assert text == (
        "Book 14 days ahead [2]; refunds within 30 days [1].\n\n*Sources*\n"
        "[1] <https://help.example.com/faq|Support FAQ &gt; Refunds>\n"
        "[2] Employee Handbook &gt; Travel"
    )


def test_an_answer_without_citations_gets_no_sources_list() -> None:
    """Nothing cited, nothing listed."""
    assert format_sources(NOT_FOUND_ANSWER, [], PASSAGES) == NOT_FOUND_ANSWER
