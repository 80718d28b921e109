"""The sandbox's demo model, asked over HTTP through the product's own LLM client.

Each request is built by the product's prompts (bot/agent/prompts.py) with the tools a
worker offers; each reply is parsed by `StructuredLLM` against the product's schemas and
judged by the loop's Verify step, so "passes" means the product would accept it.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from bot.agent import prompts
from bot.agent.loop import verify
from connectors.email.tools import SEND_EMAIL, SendEmail, send_email_tool
from connectors.registry import connector_tools
from core.db import Pool
from core.knowledge import Passage, ToolResult
from core.llm.errors import LLMUnavailable
from core.llm.providers import CallRecord, build_chain
from core.llm.structured import StructuredLLM, response_format_for
from core.schemas import Draft, Plan, plan_for
from core.tools import ToolRegistry
from guardrails.injection import wrap_untrusted
from rag.citations import NOT_FOUND_ANSWER, verify_citations
from sandbox.demo_model import DEMO_MODEL_NAME, demo_model_server, respond
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from tests.connectors.workspace import connector_settings, pool

__all__ = ["pool"]  # the module-scoped pool fixture the registry needs

API_KEY = "demo-model-test-key"
LABEL_WORDS = "demo model"
# Passages and tool results as the product's guardrails hand them to a model: wrapped.
VPN = Passage(
    id="vpn",
    title="VPN access",
    text=wrap_untrusted(
        "document",
        "VPN access",
        "Everyone uses the WireGuard VPN to reach the back office. Tokens expire every 90 "
        "days.\n## Resetting a VPN token\n1. Open https://it.northwind.example/vpn and sign "
        "in.\n2. Choose *Reset token* and scan the new QR code with the WireGuard app.",
    ),
)
REFUNDS = Passage(
    id="refunds",
    title="Refunds",
    text=wrap_untrusted(
        "document", "Refunds", "Customers may return unused items within 30 days for a full refund."
    ),
)


@pytest.fixture(scope="module")
def demo_model() -> Iterator[OpenAIEmulator]:
    with demo_model_server(API_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def model(demo_model: OpenAIEmulator) -> StructuredLLM:
    """The demo model as the worker reaches a provider: the real client, no fallback."""
    chain = build_chain(
        [("demo", demo_model.base_url, API_KEY, DEMO_MODEL_NAME)],
        timeout=5.0,
        max_retries=0,
        circuit_failures=5,
        circuit_reset=60.0,
    )
    return StructuredLLM(chain, malformed_retries=0)


@pytest.fixture(scope="module")
def registry(pool: Pool, database_url: str) -> ToolRegistry:
    """The tools a worker offers: the connectors' and the email ones."""
    settings = connector_settings(database_url)
    return ToolRegistry.of(*connector_tools(settings, pool), send_email_tool(pool, settings))


def ask_plan(model: StructuredLLM, registry: ToolRegistry, question: str) -> Plan:
    calls: list[CallRecord] = []
    offered = registry.offered()
    plan = model.ask(
        plan_for(offered), prompts.plan_messages([], question, offered), on_call=calls.append
    )
    assert [call.outcome for call in calls] == ["ok"]  # valid JSON for the schema first time
    return plan


def ask_draft(
    model: StructuredLLM,
    question: str,
    passages: list[Passage],
    tool_results: list[ToolResult] | None = None,
) -> Draft:
    plan = Plan(intent="answer", search_queries=[question], tool_calls=[])
    messages = prompts.draft_messages([], question, plan, passages, tool_results or [], [])
    return model.ask(Draft, messages, on_call=lambda _call: None)


def passes_verify(draft: Draft, passages: list[Passage]) -> bool:
    return not verify(draft) and not verify_citations(draft.answer, draft.citations, passages)


def test_a_question_is_answered_by_quoting_and_citing_the_source_that_says_it(
    model: StructuredLLM,
) -> None:
    """The draft quotes the matching sentence of the source that has it, cited as that
    source's number, says it comes from the demo model, and passes Verify."""
    question = "How long do I have to return items for a refund?"
    passages = [VPN, REFUNDS]

    draft = ask_draft(model, question, passages)

    assert "> Customers may return unused items within 30 days for a full refund. [2]" in (
        draft.answer
    )
    assert draft.citations == ["2"]
    assert LABEL_WORDS in draft.answer and "not AI" in draft.answer
    assert passes_verify(draft, passages)


def test_headings_and_the_wrapping_tags_are_never_quoted(model: StructuredLLM) -> None:
    """The quote is a sentence of the document, not its heading nor the guardrails' tags."""
    draft = ask_draft(model, "How do I reset my VPN token?", [VPN])

    assert "> Choose *Reset token* and scan the new QR code with the WireGuard app. [1]" in (
        draft.answer
    )
    assert "Resetting a VPN token" not in draft.answer
    assert "untrusted" not in draft.answer
    assert passes_verify(draft, [VPN])


def test_a_question_with_no_sources_says_it_found_nothing(model: StructuredLLM) -> None:
    """Without sources the demo model cites nothing and says it could not find it."""
    draft = ask_draft(model, "What is the office wifi password?", [])

    assert draft.answer.startswith(NOT_FOUND_ANSWER)
    assert draft.citations == []
    assert LABEL_WORDS in draft.answer
    assert passes_verify(draft, [])


def test_a_request_to_email_a_customer_calls_the_offered_send_email_tool(
    model: StructuredLLM, registry: ToolRegistry
) -> None:
    """ "email <address> about her renewal" becomes one call of the send-email tool, with
    arguments the tool itself accepts: the address (as the placeholder the model was
    given), a subject from the topic and a polite body signed by the demo model."""
    plan = ask_plan(model, registry, "<@U0BOT> please email <EMAIL_1> about her renewal")

    assert plan.search_queries == ["please email <EMAIL_1> about her renewal"]
    [call] = plan.tool_calls
    assert call.name == SEND_EMAIL
    tool = registry.get(call.name)
    assert tool is not None
    arguments = tool.parse(call.arguments)  # the product's own argument validation
    assert isinstance(arguments, SendEmail)
    assert arguments.to == ["<EMAIL_1>"]
    assert arguments.subject == "Your renewal"
    assert "about your renewal" in arguments.text and LABEL_WORDS in arguments.text
    assert "<EMAIL_1>" in call.reason


def test_close_variants_of_an_email_request_name_every_address_once(
    model: StructuredLLM, registry: ToolRegistry
) -> None:
    """ "write to" with plain addresses (Slack's mailto links included) works too."""
    question = (
        "Could you write to <mailto:bob@customer.example|bob@customer.example> and "
        "carol@customer.example regarding the delayed shipment?"
    )
    [call] = ask_plan(model, registry, question).tool_calls

    arguments = call.arguments
    assert arguments["to"] == ["bob@customer.example", "carol@customer.example"]
    assert arguments["subject"] == "The delayed shipment"


def test_a_question_that_only_mentions_an_address_calls_no_tool(
    model: StructuredLLM, registry: ToolRegistry
) -> None:
    """An address alone is not a request to send anything."""
    plan = ask_plan(model, registry, "Who is <EMAIL_1>?")

    assert plan.tool_calls == []
    assert plan.search_queries == ["Who is <EMAIL_1>?"]


def test_after_proposing_an_email_the_draft_says_it_waits_for_approval(
    model: StructuredLLM,
) -> None:
    """With sources retrieved too, the reply is about the action and still passes Verify."""
    output = "Waiting for approval, not done yet: action 7, Send an email to <EMAIL_1>."
    proposed = ToolResult(SEND_EMAIL, ok=True, output=wrap_untrusted("tool", SEND_EMAIL, output))
    passages = [REFUNDS]

    draft = ask_draft(model, "please email <EMAIL_1> about her renewal", passages, [proposed])

    assert "Your request waits for approval" in draft.answer
    assert SEND_EMAIL not in draft.answer  # people do not know the tool by name
    assert LABEL_WORDS in draft.answer
    assert passes_verify(draft, passages)


def test_it_refuses_requests_it_has_no_rule_for_and_wrong_keys(
    demo_model: OpenAIEmulator,
) -> None:
    """Free-text requests get a clear 400, and a caller without the sandbox's key a 401."""
    client = openai.OpenAI(base_url=demo_model.base_url, api_key=API_KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError, match="only answers the agent's Plan and Draft"):
        client.chat.completions.create(
            model=DEMO_MODEL_NAME, messages=[{"role": "user", "content": "Write a poem"}]
        )
    stranger = openai.OpenAI(base_url=demo_model.base_url, api_key="guess", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        stranger.chat.completions.create(
            model=DEMO_MODEL_NAME, messages=[{"role": "user", "content": "hi"}]
        )


def test_the_llm_client_treats_its_refusal_as_an_outage_not_a_crash(
    model: StructuredLLM,
) -> None:
    """A step it has no rule for ends in the loop's "couldn't complete" path."""
    from pydantic import BaseModel, ConfigDict

    class Summary(BaseModel):
        model_config = ConfigDict(extra="forbid")
        summary: str

    with pytest.raises(LLMUnavailable):
        model.ask(Summary, [{"role": "user", "content": "sum up"}], on_call=lambda _c: None)


def test_a_script_still_answers_before_the_responder() -> None:
    """The emulator consults its responder only when no script matches, so tests can
    still script one reply of an emulator that otherwise answers by rules."""
    with OpenAIEmulator(responder=respond) as emulator:
        emulator.script(Reply(content="scripted"), match="[scripted]")
        client = openai.OpenAI(base_url=emulator.base_url, api_key="any", max_retries=0)

        def ask(text: str) -> str | None:
            return (
                client.chat.completions.create(
                    model=DEMO_MODEL_NAME,
                    messages=[{"role": "user", "content": text}],
                    extra_body={"response_format": response_format_for(Draft)},
                )
                .choices[0]
                .message.content
            )

        assert ask("[scripted] hi") == "scripted"
        drafted = ask("[scripted] hi again")
        assert drafted is not None and NOT_FOUND_ANSWER in drafted
