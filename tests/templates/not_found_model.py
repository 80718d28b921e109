"""The knowledge template's golden set run by `chatops eval agent --base-url` against a
served model that answers every question "not found"."""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.templates.agent_eval import run_agent_eval
from bot.templates.golden import GoldenCase, load_golden
from rag.citations import NOT_FOUND_ANSWER
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from tests.connectors.workspace import connector_settings
from tests.support.processes import REPO

TEMPLATES = REPO / "templates"


def eval_knowledge_against_a_not_found_model(
    llm: OpenAIEmulator, database_url: str, against: Path | None = None
) -> tuple[int, list[GoldenCase]]:
    """The eval's exit code and the knowledge cases it ran, compared with the baseline
    ``against`` if given."""
    knowledge = load_golden(TEMPLATES / "golden" / "knowledge.jsonl")
    plan = {"intent": "answer", "search_queries": [], "tool_calls": []}
    for _ in knowledge:  # no tools: a Plan, then a Draft that passes Verify
        llm.script(
            Reply(content=plan), Reply(content={"answer": NOT_FOUND_ANSWER, "citations": []})
        )
    settings = connector_settings(database_url, llm_max_retries=0, llm_malformed_retries=0)
    code = run_agent_eval(
        settings,
        argparse.Namespace(
            data=TEMPLATES,
            base_url=llm.base_url,
            model="emulator-chat",
            template="knowledge",
            limit=None,
            json=None,
            against=against,
        ),
    )
    return code, knowledge
