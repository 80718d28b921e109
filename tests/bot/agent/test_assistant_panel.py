"""The title an assistant panel thread gets from its first question."""

from __future__ import annotations

from bot.agent.assistant_panel import TITLE_CHARS, thread_title


def test_a_short_question_is_the_title_as_it_is() -> None:
    assert thread_title("  How long do refunds take?\n") == "How long do refunds take?"


def test_a_long_question_is_cut_at_a_word_and_marked() -> None:
    question = "Could you please find what our knowledge base says about " + "refunds " * 10
    title = thread_title(question)
    assert len(title) <= TITLE_CHARS and title.endswith("…")
    assert question.startswith(title[:-1]) and not title[:-1].endswith(" ")


def test_only_the_first_line_counts() -> None:
    assert thread_title("\nSummarise this channel\nand list the open questions") == (
        "Summarise this channel"
    )
