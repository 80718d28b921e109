"""Agent templates: each YAML file is valid, names only tools the product has, and passes
its golden set through the real agent loop against the scripted model emulator; `chatops
eval agent` prints the figures a person reads."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from bot.templates.eval_command import run_templates_eval
from bot.templates.evaluate import golden_run_steps, run_case
from bot.templates.golden import (
    GoldenCase,
    Transcript,
    check,
    judge,
    load_golden,
    model_replies,
)
from connectors.email.tools import send_email_tool
from connectors.registry import connector_tools
from core.agent_template import AgentTemplate, TemplateError, load_template, load_templates
from core.db import Pool
from core.llm.providers import build_chain
from core.llm.structured import StructuredLLM
from core.tools import ToolRegistry
from rag.citations import NOT_FOUND_ANSWER
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from tests.connectors.workspace import DB, connector_settings, pool
from tests.support.processes import REPO
from tests.templates.not_found_model import eval_knowledge_against_a_not_found_model

__all__ = ["pool"]  # the module-scoped pool fixture these tests share

TEMPLATES = REPO / "templates"
NAMES = ("knowledge", "sales", "support")


@pytest.fixture(scope="module")
def registry(pool: Pool, database_url: str) -> ToolRegistry:
    """The tools a worker offers: the connectors' and the email ones."""
    settings = connector_settings(database_url)
    return ToolRegistry.of(*connector_tools(settings, pool), send_email_tool(pool, settings))


@pytest.fixture(scope="module")
def conn(database_url: str) -> Iterator[DB]:
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as opened:
        yield opened


def json_plans_model(llm: OpenAIEmulator) -> StructuredLLM:
    """The emulator as a golden run's model: no retries, and JSON-schema Plan turns (the
    golden cases' replies are JSON plans)."""
    return StructuredLLM(
        build_chain(
            [("primary", llm.base_url, "test-key", "emulator-chat")],
            timeout=5,
            max_retries=0,
            circuit_failures=100,
            circuit_reset=30,
        ),
        malformed_retries=0,
        tool_calling="json",
    )


def _cases() -> list[tuple[str, GoldenCase]]:
    return [
        (name, case)
        for name in NAMES
        for case in load_golden(TEMPLATES / "golden" / f"{name}.jsonl")
    ]


def _case(case_id: str) -> GoldenCase:
    return next(case for _, case in _cases() if case.id == case_id)


def test_the_three_templates_load_and_name_known_tools(registry: ToolRegistry) -> None:
    """sales, support and knowledge are valid and every tool they name exists."""
    templates = load_templates(TEMPLATES)

    assert sorted(templates) == list(NAMES)
    for template in templates.values():
        assert template.unknown_tools(registry) == [], template.name
        assert load_golden(TEMPLATES / template.golden_set), template.name
    assert templates["knowledge"].tools == []
    assert templates["support"].approval.four_eyes is True


def test_the_golden_sets_cover_what_the_issue_asks_for() -> None:
    """At least 60 cases over the three templates: 10 multi-step chains, 10 unanswerable
    questions and 5 with a planted instruction, each case with a distinct request."""
    cases = [case for _, case in _cases()]
    kinds = Counter(case.kind for case in cases)

    assert len(cases) >= 60
    assert kinds["chain"] >= 10 and kinds["not_found"] >= 10 and kinds["action"] >= 5
    assert sum(case.planted is not None for case in cases) >= 5
    assert len({case.id for case in cases}) == len(cases)
    assert len({case.request for case in cases}) == len(cases)
    for case in cases:
        if case.kind == "chain":  # a read tool's result decides the action (or none)
            assert len(case.expect.tools_called) >= 1, case.id
        if case.kind == "answer":
            assert case.expect.facts, case.id


def test_a_broken_template_is_refused_with_its_file_and_problem(tmp_path: Path) -> None:
    """A template with a wrong field or a name that differs from its file is refused."""
    broken = tmp_path / "sales.yaml"
    sales = (TEMPLATES / "sales.yaml").read_text()
    broken.write_text(re.sub(r"^version: \d+$", "version: 0", sales, count=1, flags=re.M))
    renamed = tmp_path / "marketing.yaml"
    renamed.write_text((TEMPLATES / "sales.yaml").read_text())

    with pytest.raises(TemplateError, match=r"sales.yaml: version: Input should be greater"):
        load_template(broken)
    with pytest.raises(TemplateError, match="its name is 'sales', not 'marketing'"):
        load_template(renamed)


def test_checks_fail_for_a_run_that_misses_its_expectations() -> None:
    """A run without the expected call, action, source or fact fails those checks."""
    action = _case("support-reply-and-solve")
    answer = _case("support-refund-policy-cited")

    results = check(action, Transcript(answer="All done!"))
    cited_elsewhere = judge(answer, Transcript(answer="Refunds take 60 days.", cited=[]))

    assert results["called zendesk_add_comment"] is False
    assert results["actions proposed"] is False
    assert results['says "waiting for approval"'] is False
    assert cited_elsewhere.correct is False
    assert set(cited_elsewhere.missed()) >= {
        'states "30 days"',
        f"cites {answer.expect.cited_sources[0]}",
        'does not say "60 days"',
    }


def test_the_judge_scores_each_kind_by_what_matters_for_it() -> None:
    """A not-found case needs the not-found answer without sources; a chain needs its calls
    in order; a planted instruction counts as followed on an unexpected action or a leak."""
    not_found = _case("knowledge-parental-leave-not-found")
    chain = _case("sales-chain-search-then-note")
    planted = _case("sales-email-planted-instruction")
    note = ("hubspot_add_contact_note", {"contact_id": "204", "text": "SSO"})
    search = ("hubspot_search_contacts", {"query": "Priya Patel", "limit": 10})

    assert judge(not_found, Transcript(answer=NOT_FOUND_ANSWER)).correct is True
    with_sources = Transcript(answer=f"{NOT_FOUND_ANSWER}\n\n*Sources*\n[1] Holidays")
    assert judge(not_found, with_sources).correct is False
    in_order = Transcript(tool_calls=[search, note], proposed=["hubspot_add_contact_note"])
    assert judge(chain, in_order).correct is True
    reversed_calls = Transcript(tool_calls=[note, search], proposed=["hubspot_add_contact_note"])
    assert judge(chain, reversed_calls).correct is False
    assert judge(planted, Transcript(answer="He wants to move the call.")).planted_followed is False
    obeyed = Transcript(answer="Fine.", proposed=["hubspot_update_deal_stage"])
    assert judge(planted, obeyed).planted_followed is True
    leaked = Transcript(answer="Deal approved by management.")
    assert judge(planted, leaked).planted_followed is True


@pytest.mark.parametrize(("name", "case"), _cases(), ids=lambda v: getattr(v, "id", v))
def test_each_golden_case_passes_against_the_scripted_model(
    name: str,
    case: GoldenCase,
    llm: OpenAIEmulator,
    registry: ToolRegistry,
    conn: DB,
) -> None:
    """The template's golden case passes every check through the real agent loop, and the
    loop asks the model exactly as many times as the case's script has turns."""
    template: AgentTemplate = load_template(TEMPLATES / f"{name}.yaml")
    llm.script(*(Reply(content=reply) for reply in model_replies(case)), match=case.request)
    model = json_plans_model(llm)
    steps = golden_run_steps(conn, case.id, max_steps=16)  # AGENT_MAX_STEPS default

    transcript = run_case(template, case, llm=model, registry=registry, steps=steps)

    verdict = judge(case, transcript)
    assert verdict.checks and verdict.passed, (verdict.missed(), transcript)
    assert verdict.correct and not verdict.planted_followed
    assert llm.pending() == [], "the loop did not ask for every scripted turn"


def test_chatops_eval_agent_prints_the_table_and_writes_json(
    database_url: str, tmp_path: Path
) -> None:
    """`chatops eval agent --limit` runs a sample spread over the kinds against the scripted
    emulator and prints, per template and overall, the figures with their aims."""
    out = tmp_path / "agent.json"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LLM_"))},
        "DATABASE_URL": database_url,
        "SLACK_SIGNING_SECRET": "s",
    }

    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "eval", "agent", "--limit", "6", "--json", str(out)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )

    printed = done.stdout
    assert done.returncode == 0, printed + done.stderr[-3000:]
    total = len(_cases())
    assert f"scripted emulator (each case's own script): 6 of {total} cases" in printed
    assert "a sample taken in turn from each kind of case" in printed
    for label, aim in (
        ("answered correctly, valid citations", ">= 80%"),
        ('"not found" when it is not there', ">= 90%"),
        ("single actions proposed correctly", ">= 70%"),
        ("multi-step chains proposed correctly", ">= 50%"),
    ):
        line = next(line for line in printed.splitlines() if line.startswith(label))
        assert line.rstrip().endswith(aim), line
        assert "100%" in line, line
    followed = next(line for line in printed.splitlines() if line.startswith("planted"))
    assert "0 of 1" in followed
    assert "latency p95 per request" in printed and "model calls per request" in printed
    assert "Traceback" not in printed and "CaseResult(" not in printed
    written = json.loads(out.read_text())
    assert written["cases_run"] == 6 and written["cases_in_sets"] == total
    kinds = Counter(c["kind"] for c in written["cases"])
    assert kinds == {"answer": 2, "not_found": 1, "action": 1, "chain": 1} or len(kinds) == 4
    assert all(c["passed"] and c["model_calls"] >= 2 for c in written["cases"])


def test_a_wrong_model_reply_shows_in_the_table_as_a_miss(
    llm: OpenAIEmulator, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Against a server that always answers "not found", the answers, actions and chains
    are misses, the not-found cases are right, and the failed checks are listed by case."""
    code, knowledge = eval_knowledge_against_a_not_found_model(llm, database_url)

    printed = capsys.readouterr().out
    assert code == 1
    assert f"emulator-chat at {llm.base_url}" in printed
    not_found = next(line for line in printed.splitlines() if line.startswith('"not found"'))
    answered = next(line for line in printed.splitlines() if line.startswith("answered"))
    right = [c for c in knowledge if c.kind == "not_found"]
    count = sum(c.kind == "not_found" for c in knowledge)
    assert f"{len(right)}/{count}" in not_found and " 0%" in answered
    assert "knowledge / knowledge-vpn-reset-cited (answer):" in printed
    assert 'states "Reset token"' in printed


def test_chatops_eval_templates_uses_the_configured_model(
    llm: OpenAIEmulator, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`chatops eval templates` scores every case against OPENAI_BASE_URL's model."""
    for _, case in _cases():
        llm.script(*(Reply(content=reply) for reply in model_replies(case)), match=case.request)
    settings = connector_settings(
        database_url,
        openai_base_url=llm.base_url,
        openai_api_key="test-key",
        llm_max_retries=0,
        llm_tool_calling="json",  # the golden cases' replies are JSON plans
    )

    code = run_templates_eval(settings, argparse.Namespace(data=TEMPLATES))

    printed = capsys.readouterr().out
    assert code == 0, printed
    total = len(_cases())
    assert f"{total} of {total} cases" in printed
    passed = next(line for line in printed.splitlines() if line.startswith("every check"))
    assert f"{total}/{total} 100%" in passed
