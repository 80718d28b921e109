"""An action's text is what a customer or colleague will read: one with a blank left to
fill in ("[Your Name]") goes back to the model, which writes it without. Run through the
real agent loop with the templates, as a golden case is."""

from __future__ import annotations

from typing import Any

from core.tools import ToolRegistry
from sandbox.openai_emulator import OpenAIEmulator
from tests.bot.agent.test_what_tools_find import DRAFT, conn, plan, pool, registry, run
from tests.connectors.workspace import DB

__all__ = ["conn", "pool", "registry"]  # the module-scoped fixtures these tests share

ASKED = "Email priya@initech.example that her renewal quote is ready"


def email(text: str) -> dict[str, Any]:
    return {
        "name": "send_email",
        "arguments": {"to": ["priya@initech.example"], "subject": "Your quote", "text": text},
        "reason": "Tell Priya",
    }


def sent_texts(transcript: Any) -> list[str]:
    return [args["text"] for name, args in transcript.tool_calls if name == "send_email"]


def test_an_email_signed_with_a_blank_name_goes_without_that_line(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    """Asked twice to write it without "[Your Name]", the 1.5B model wrote the same: the
    blank signature line is taken off, with no model call spent on it."""
    body = "Hi Priya,\n\nYour renewal quote is ready.\n\nBest regards,"
    for signature in ("[Your Name]", "Your Name", "[Sender's name]"):
        transcript, sent = run(
            llm,
            registry,
            conn,
            [plan(email(f"{body}\n{signature}\n")), DRAFT],
            asked=ASKED,
            template="sales",
        )

        assert sent_texts(transcript) == [body]
        assert len(sent) == 2  # the plan was not sent back


def test_an_email_with_a_blank_in_its_text_is_written_again_without_it(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    with_blank = email("Hi Priya,\n\nYour quote for [Company Name] is ready.\n\nBest regards")
    written_again = email("Hi Priya,\n\nYour quote for Initech is ready.\n\nBest regards")
    transcript, sent = run(
        llm,
        registry,
        conn,
        [plan(with_blank), plan(written_again), DRAFT],
        asked=ASKED,
        template="sales",
    )

    assert sent_texts(transcript) == [written_again["arguments"]["text"]]
    told = sent[1]["messages"][-1]["content"]
    assert "text holds [Company Name]: a blank someone would have to fill in" in told


def test_citations_and_links_in_an_email_are_not_blanks(
    llm: OpenAIEmulator, registry: ToolRegistry, conn: DB
) -> None:
    text = "Hi Priya, the price list is on [our site](https://northwind.example/prices) [1]."
    transcript, sent = run(
        llm, registry, conn, [plan(email(text)), DRAFT], asked=ASKED, template="sales"
    )

    assert sent_texts(transcript) == [text]
    assert len(sent) == 2  # the plan was not sent back
