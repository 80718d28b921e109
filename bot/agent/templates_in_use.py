"""An agent template applied to one run: its prompt, tools, knowledge, approval rules and
model, in place of the deployment's defaults.

With no template the run keeps today's behaviour: every tool the deployment has (the
guardrail policy still refuses denied calls when they are made), the default prompt, all
of the tenant's knowledge, the tenant's approval settings and the configured models.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from psycopg import Connection

from core.agent_template import AgentTemplate
from core.knowledge import EmptyKnowledge, Passage, Retriever
from core.llm.structured import StructuredLLM
from core.tools import ToolRegistry
from guardrails.policy import ToolPolicy
from guardrails.tool_policy import check_tool_call
from rag.retriever import HybridRetriever
from review.conversation_settings import EffectiveSettings

if TYPE_CHECKING:
    from bot.agent.runs import WorkerDeps

log = structlog.get_logger(__name__)


class CollectionSearch(Protocol):
    """A retriever that can search named collections (rag.retriever.HybridRetriever)."""

    def search(
        self,
        tenant_id: int,
        queries: list[str],
        *,
        limit: int,
        collections: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        skip_missing: bool = False,
    ) -> list[Passage]: ...


@dataclass(frozen=True)
class ScopedKnowledge:
    """Searches only the given collections; ones the tenant has not filled are skipped."""

    inner: CollectionSearch
    collections: tuple[str, ...]

    def search(self, tenant_id: int, queries: list[str], *, limit: int) -> list[Passage]:
        if not self.collections:
            return []
        return self.inner.search(
            tenant_id, queries, limit=limit, collections=list(self.collections), skip_missing=True
        )


@dataclass(frozen=True)
class TemplateRun:
    """What one run uses, after its template (if any) is applied."""

    template: AgentTemplate | None
    tools: ToolRegistry
    llm: StructuredLLM | None
    retriever: Retriever
    instructions: str | None
    approval_ttl: timedelta
    four_eyes: bool  # the template's: requesters may not approve its actions


def apply_template(
    settings: EffectiveSettings,
    templates: Mapping[str, AgentTemplate],
    *,
    tools: ToolRegistry,
    llm: StructuredLLM | None,
    retriever: Retriever,
    tool_policy: ToolPolicy,
    channel: str | None,
    approval_ttl: timedelta,
) -> TemplateRun:
    template = templates.get(settings.template) if settings.template else None
    if template is not None and template.version != settings.template_version:
        # One version of a template is deployed at a time; the run records the one it used.
        log.info(
            "template.version_changed",
            template=template.name,
            pinned=settings.template_version,
            running=template.version,
        )
    scoped = scope_knowledge(retriever, settings.collections)
    if template is None:
        return TemplateRun(None, tools, llm, scoped, None, approval_ttl, four_eyes=False)
    return TemplateRun(
        template=template,
        tools=template_tools(template, tools, tool_policy, channel),
        llm=template_llm(template, llm),
        retriever=scoped,
        instructions=template.prompt.text,
        approval_ttl=timedelta(hours=template.approval.expires_after_hours),
        four_eyes=template.approval.four_eyes,
    )


def template_tools(
    template: AgentTemplate, registry: ToolRegistry, policy: ToolPolicy, channel: str | None
) -> ToolRegistry:
    """The template's tools that the deployment has and the tenant's allow and deny lists
    (workspace and channel) permit: the only ones the model is offered or may call."""
    allowed = []
    for name in template.tools:
        tool = registry.get(name)
        if tool is None:
            log.warning("template.tool_missing", template=template.name, tool=name)
            continue
        # No arguments: only the lists are judged here; argument rules (recipients) are
        # checked again on every call.
        if check_tool_call(policy, name, {}, channel).allowed:
            allowed.append(tool)
    return ToolRegistry.of(*allowed)


def template_llm(template: AgentTemplate, llm: StructuredLLM | None) -> StructuredLLM | None:
    """The template's model on the primary provider (see ProviderChain.with_primary_model)."""
    if llm is None or template.model is None:
        return llm
    return replace(llm, chain=llm.chain.with_primary_model(template.model))


def scope_knowledge(retriever: Retriever, collections: tuple[str, ...] | None) -> Retriever:
    if collections is None:
        return retriever
    if not _searches_collections(retriever):
        # A retriever without collections (a tenant with no knowledge base) has nothing
        # to narrow; refusing everything keeps a Slack Connect channel's promise anyway.
        return EmptyKnowledge()
    return ScopedKnowledge(retriever, collections)  # type: ignore[arg-type]  # checked above


def _searches_collections(retriever: Retriever) -> bool:
    return isinstance(retriever, HybridRetriever)  # the one retriever with collections


def apply_to_run(
    conn: Connection[dict[str, Any]],
    deps: WorkerDeps,
    tenant_id: int,
    run_id: int,
    settings: EffectiveSettings,
    *,
    channel: str | None,
    approval_ttl: timedelta,
) -> TemplateRun:
    """`apply_template` with the worker's tools, model, knowledge and the tenant's tool
    policy, recorded on the run (`record_on_run`)."""
    applied = apply_template(
        settings,
        deps.templates,
        tools=deps.tools,
        llm=deps.llm,
        retriever=deps.retriever,
        tool_policy=deps.guardrails.policy(tenant_id).tools,
        channel=channel,
        approval_ttl=approval_ttl,
    )
    record_on_run(conn, tenant_id, run_id, applied)
    return applied


def record_on_run(
    conn: Connection[dict[str, Any]], tenant_id: int, run_id: int, applied: TemplateRun
) -> None:
    """Which template name and version, and which prompt version, this run used."""
    template = applied.template
    conn.execute(
        """UPDATE agent_runs SET template_name = %s, template_version = %s, prompt_version = %s
           WHERE id = %s AND tenant_id = %s""",
        (
            template.name if template else None,
            template.version if template else None,
            template.prompt.version if template else None,
            run_id,
            tenant_id,
        ),
    )
