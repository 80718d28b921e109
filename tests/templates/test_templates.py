"""Agent templates: each YAML file is valid, names only tools the product has, and passes
its golden set through the real agent loop against the scripted model emulator."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from bot.agent.tools import ToolRegistry
from bot.db import Pool
from bot.llm.providers import build_chain
from bot.llm.structured import StructuredLLM
from bot.templates.eval_command import run_templates_eval
from bot.templates.evaluate import golden_run_steps, run_case
from bot.templates.golden import GoldenCase, Transcript, check, load_golden
from bot.templates.spec import AgentTemplate, TemplateError, load_template, load_templates
from connectors.email.tools import send_email_tool
from connectors.registry import connector_tools
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from tests.connectors.workspace import DB, connector_settings, pool

__all__ = ["pool"]  # the module-scoped pool fixture these tests share

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
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


def test_the_three_templates_load_and_name_known_tools(registry: ToolRegistry) -> None:
    """sales, support and knowledge are valid and every tool they name exists."""
    templates = load_templates(TEMPLATES)

    assert sorted(templates) == list(NAMES)
    for template in templates.values():
        assert template.unknown_tools(registry) == [], template.name
        assert load_golden(TEMPLATES / template.golden_set), template.name
    assert templates["knowledge"].tools == []
    assert templates["support"].approval.four_eyes is True


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
    """A run without the expected call, action, source or phrase fails those checks."""
    case = load_golden(TEMPLATES / "golden" / "support.jsonl")[1]

    results = check(case, Transcript(answer="All done!"))

    assert results["called zendesk_read_ticket"] is False
    assert results["actions proposed"] is False
    assert results["says 'waiting for approval'"] is False


def _cases() -> list[tuple[str, GoldenCase]]:
    return [
        (name, case)
        for name in NAMES
        for case in load_golden(TEMPLATES / "golden" / f"{name}.jsonl")
    ]


@pytest.mark.parametrize(("name", "case"), _cases(), ids=lambda v: getattr(v, "id", v))
def test_each_golden_case_passes_against_the_scripted_model(
    name: str,
    case: GoldenCase,
    llm: OpenAIEmulator,
    registry: ToolRegistry,
    conn: DB,
) -> None:
    """The template's golden case passes every check through the real agent loop."""
    template: AgentTemplate = load_template(TEMPLATES / f"{name}.yaml")
    llm.script(*(Reply(content=reply) for reply in case.script), match=case.request)
    model = StructuredLLM(
        build_chain(
            [("primary", llm.base_url, "test-key", "emulator-chat")],
            timeout=5,
            max_retries=0,
            circuit_failures=100,
            circuit_reset=30,
        ),
        malformed_retries=0,
    )
    steps = golden_run_steps(conn, case.id, max_steps=8)

    transcript = run_case(template, case, llm=model, registry=registry, steps=steps)

    results = check(case, transcript)
    assert results and all(results.values()), (results, transcript)


def test_the_eval_command_prints_pass_rates(
    llm: OpenAIEmulator, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`chatops eval templates` runs every golden case and prints a rate per template and check."""
    for _, case in _cases():
        llm.script(*(Reply(content=reply) for reply in case.script), match=case.request)
    settings = connector_settings(
        database_url, openai_base_url=llm.base_url, openai_api_key="test-key", llm_max_retries=0
    )

    code = run_templates_eval(settings, argparse.Namespace(data=TEMPLATES))

    printed = capsys.readouterr().out
    assert code == 0, printed
    for name in NAMES:
        count = len(load_golden(TEMPLATES / "golden" / f"{name}.jsonl"))
        assert f"{name:<12} {count}/{count} (100%)" in printed, name
    assert "knowledge: refused hubspot_search_contacts" in printed
