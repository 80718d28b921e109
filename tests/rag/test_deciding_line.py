"""Which source line a yes-or-no answer is given beneath it: the one the question's own
words pick out, never one the answer already says. Against the sandbox's sample pages."""

from __future__ import annotations

from rag.attribution import Evidence
from rag.deciding_line import DecidingLine, deciding_line
from tests.support.processes import REPO

BATTERY = "Is a widget battery that died after 14 months still under warranty?"


def page(name: str, number: int = 1) -> Evidence:
    return Evidence((REPO / "sandbox" / "sample_knowledge" / name).read_text(), number)


def test_the_line_with_the_questions_rarest_words_is_quoted() -> None:
    """ "Widget" and "warranty" are all over the warranty page; "battery" is on one line."""
    line = deciding_line(
        "No, a widget battery that died after 14 months is not under warranty.",
        [1],
        [page("warranty.md")],
        BATTERY,
    )

    assert line == DecidingLine("Batteries are covered for 12 months.", 1)


def test_the_line_comes_from_the_source_cited() -> None:
    line = deciding_line(
        "No, it is not under warranty [2].",
        [2],
        [page("refunds.md", 1), page("warranty.md", 2)],
        BATTERY,
    )

    assert line is not None and line.number == 2


def test_an_answer_that_is_not_a_yes_or_no_gets_no_line() -> None:
    assert deciding_line("Batteries die.", [1], [page("warranty.md")], BATTERY) is None


def test_an_answer_that_already_gives_the_figure_gets_no_line() -> None:
    answer = "No: batteries are covered for 12 months, so at 14 months it is not."

    assert deciding_line(answer, [1], [page("warranty.md")], BATTERY) is None


def test_no_line_when_the_sources_do_not_share_the_question_s_words() -> None:
    line = deciding_line(
        "No, you can't.", [1], [page("vpn.md")], "Can I bring my dog to the office?"
    )

    assert line is None


def test_a_rule_wrapped_over_two_lines_of_the_source_is_quoted_whole() -> None:
    """The VPN page wraps "IT unlocks accounts within / one hour during business hours"
    over two lines; quoted line by line, the person read the rule without its hour."""
    line = deciding_line(
        "Yes, IT unlocks a locked VPN account [1].",
        [1],
        [page("vpn.md")],
        "If my VPN account is locked, will IT unlock it?",
    )

    assert line is not None
    assert line.text.endswith("within one hour during business hours (08:00-18:00 UK time).")
