"""Applying an agent template to a run: its model, its tools under the tenant's policy,
its approval rules."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from bot.agent.run_request import run_request
from bot.agent.templates_in_use import ScopedKnowledge, apply_template, template_tools
from core.agent_template import load_templates
from core.db import Pool, open_pool
from core.knowledge import EmptyKnowledge
from core.llm.providers import build_chain
from core.tools import Effect, Tool, ToolRegistry
from guardrails.policy import ToolPolicy, ToolRules
from review.conversation_settings import EffectiveSettings
from review.tenant_settings import ReviewSettings, for_action
from sandbox.openai_emulator import OpenAIEmulator
from tests.bot.agent.test_run_request import guardrails_for
from tests.support.channels import new_channel
from tests.support.conversation import REQUESTER, script_answer, unique_question
from tests.support.processes import wait_for
from tests.support.stack import Stack
from tests.support.worker_deps import in_process_deps

DB = psycopg.Connection[dict[str, Any]]
TEMPLATES = load_templates(Path(__file__).resolve().parents[3] / "templates")


def a_tool(name: str) -> Tool:
    return Tool(
        name=name,
        description=f"{name} for tests",
        effect=Effect.READ_ONLY,
        arguments=ToolRules,  # any pydantic model will do: the tool is never run here
        run=lambda context, arguments, key: {},
        summarize=lambda arguments: name,
    )


def settings_for(template: str | None) -> EffectiveSettings:
    return EffectiveSettings(template, 1, 1, "mention", "public", None, shared=False)


def test_template_tools_are_the_templates_minus_what_the_policy_denies() -> None:
    """The model is offered the template's tools that exist here and that the workspace's
    and channel's lists allow; nothing outside the template."""
    registry = ToolRegistry.of(
        *(a_tool(n) for n in ("zendesk_read_ticket", "zendesk_set_status", "post_to_channel"))
    )
    support = TEMPLATES["support"]
    policy = ToolPolicy(
        deny=["zendesk_set_status"],
        channels={"C0LOCKED": ToolRules(allow=["zendesk_search_*"])},
    )
    assert set(template_tools(support, registry, policy, "C0OPEN").tools) == {"zendesk_read_ticket"}
    assert template_tools(support, registry, policy, "C0LOCKED").tools == {}


def test_no_template_keeps_the_deployments_defaults() -> None:
    """Without a template: every tool, no extra prompt, the tenant's approval expiry."""
    registry = ToolRegistry.of(a_tool("post_to_channel"))
    applied = apply_template(
        settings_for(None),
        TEMPLATES,
        tools=registry,
        llm=None,
        retriever=EmptyKnowledge(),
        tool_policy=ToolPolicy(),
        channel="C0X",
        approval_ttl=timedelta(hours=24),
    )
    assert applied.tools is registry and applied.instructions is None
    assert applied.approval_ttl == timedelta(hours=24) and not applied.four_eyes


def test_template_approval_rules_apply_to_its_actions() -> None:
    """The support template's expiry and four-eyes rule replace the tenant's for its runs,
    and an action it proposed is judged with four-eyes on."""
    applied = apply_template(
        settings_for("support"),
        TEMPLATES,
        tools=ToolRegistry.of(),
        llm=None,
        retriever=EmptyKnowledge(),
        tool_policy=ToolPolicy(),
        channel="C0X",
        approval_ttl=timedelta(hours=24),
    )
    assert applied.approval_ttl == timedelta(hours=8) and applied.four_eyes
    tenant = ReviewSettings(1, "C0A", None, False, timedelta(hours=24), timedelta(hours=2), False)
    assert for_action(tenant, {"four_eyes": True}).four_eyes
    assert not for_action(tenant, {"four_eyes": False}).four_eyes


def test_template_model_replaces_only_the_primary_providers() -> None:
    """A template's model goes to the primary provider; fallbacks keep their own models,
    which another vendor's endpoint would not know."""
    chain = build_chain(
        [("primary", None, "k", "gpt-4o-mini"), ("fallback", None, "k", "llama-3.1-8b")],
        timeout=1,
        max_retries=0,
        circuit_failures=1,
        circuit_reset=1,
    )
    changed = chain.with_primary_model("gpt-4o")
    assert [p.model for p in changed.providers] == ["gpt-4o", "llama-3.1-8b"]
    assert [p.model for p in chain.providers] == ["gpt-4o-mini", "llama-3.1-8b"]
    assert changed.providers[0].breaker is chain.providers[0].breaker


def test_collections_scope_reaches_the_retriever() -> None:
    """A run limited to collections searches those by name, skipping ones not filled yet."""
    seen: dict[str, Any] = {}

    class Recording:
        def search(self, tenant_id: int, queries: list[str], **options: Any) -> list[Any]:
            seen.update(options)
            return []

    ScopedKnowledge(Recording(), ("public",)).search(1, ["q"], limit=3)
    assert seen == {"limit": 3, "collections": ["public"], "skip_missing": True}
    seen.clear()
    assert ScopedKnowledge(Recording(), ()).search(1, ["q"], limit=3) == []
    assert seen == {}


@pytest.fixture
def pool(database_url: str) -> Iterator[Pool]:
    opened = open_pool(database_url, max_size=2)
    yield opened
    opened.close()


def test_a_templates_model_is_the_one_requested(
    stack: Stack, llm: OpenAIEmulator, db: DB, pool: Pool, database_url: str
) -> None:
    """A channel on a template that names a model gets its answers from that model."""
    # Given a deployment whose support template asks for its own model, on a channel
    support = TEMPLATES["support"].model_copy(update={"model": "support-model-2"})
    deps = dataclasses.replace(
        in_process_deps(stack, llm, pool, guardrails_for(database_url, pool)),
        templates={"support": support},
        tools=ToolRegistry.of(),
    )
    tenant = db.execute(
        "SELECT tenant_id FROM slack_installations WHERE team_id = %s",
        (stack.slack.workspace.team.id,),
    ).fetchone()
    assert tenant is not None
    channel = new_channel(stack.slack)
    db.execute(
        """INSERT INTO channel_settings (tenant_id, slack_channel_id, agent_template)
           VALUES (%s, %s, 'support')""",
        (tenant["tenant_id"], channel),
    )
    question = unique_question("Has ticket 42 been answered?")
    script_answer(llm, question, "Yes, yesterday.")
    message = stack.slack.workspace.post_message(channel, user=REQUESTER, text=question)
    envelope = stack.slack.dispatcher.builder.envelope(
        {
            "type": "app_mention",
            "user": REQUESTER,
            "text": question,
            "ts": message.ts,
            "channel": channel,
            "event_ts": message.ts,
        }
    )
    request = db.execute(
        """INSERT INTO inbound_requests (tenant_id, source, external_id, kind, payload, status)
           VALUES (%s, 'slack', %s, 'app_mention', %s, 'queued') RETURNING id""",
        (tenant["tenant_id"], f"test-{uuid.uuid4().hex}", Jsonb(envelope)),
    ).fetchone()
    assert request is not None

    # When the request runs
    run_request(deps, request["id"])

    # Then every model call of the run asked for the template's model
    calls = wait_for(lambda: llm.requests(match=question), message="the model calls")
    assert {call["model"] for call in calls} == {"support-model-2"}
    assert db.execute(
        "SELECT model FROM llm_usage u JOIN agent_runs r ON r.id = u.run_id"
        " WHERE r.request_id = %s LIMIT 1",
        (request["id"],),
    ).fetchone() == {"model": "support-model-2"}
