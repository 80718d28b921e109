"""`chatops eval templates`: every template's golden set against the configured model,
in a scratch database, with a pass rate per template and per check.

Ready to be listed in bot/commands/eval.py's KINDS as `run_templates_eval`.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from bot.agent.tools import ToolRegistry
from bot.db import open_pool
from bot.llm.providers import build_chain
from bot.llm.structured import StructuredLLM
from bot.scratch_database import scratch_database
from bot.settings import Settings
from bot.templates.evaluate import golden_run_steps, run_case
from bot.templates.golden import check, load_golden
from bot.templates.spec import load_templates
from connectors.email.tools import send_email_tool
from connectors.registry import connector_tools

DEFAULT_FOLDER = Path("templates")  # relative to the working directory: the repository


def run_templates_eval(settings: Settings, args: argparse.Namespace) -> int:
    """Exit code 0 when every check of every case passes, 1 otherwise, 2 with no model."""
    providers = settings.llm_providers
    if not providers:
        print("No language model is configured (OPENAI_BASE_URL / OPENAI_API_KEY).")
        return 2
    folder = getattr(args, "data", None) or DEFAULT_FOLDER
    templates = load_templates(folder)
    per_template: dict[str, list[bool]] = defaultdict(list)
    per_check: dict[str, list[bool]] = defaultdict(list)
    with scratch_database(settings.database_url, "chatops_eval_templates") as url:
        pool = open_pool(url, max_size=2)
        try:
            registry = ToolRegistry.of(
                *connector_tools(settings, pool), send_email_tool(pool, settings)
            )
            for template in templates.values():
                model = template.model or settings.llm_model
                llm = StructuredLLM(
                    build_chain(
                        [
                            (p.name, p.base_url, p.api_key.get_secret_value(), model)
                            for p in providers
                        ],
                        timeout=settings.llm_timeout_seconds,
                        max_retries=settings.llm_max_retries,
                        circuit_failures=settings.llm_circuit_failures,
                        circuit_reset=settings.llm_circuit_reset_seconds,
                    ),
                    malformed_retries=settings.llm_malformed_retries,
                )
                for case in load_golden(folder / template.golden_set):
                    with pool.connection() as conn:
                        steps = golden_run_steps(conn, case.id, settings.agent_max_steps)
                        results = check(
                            case, run_case(template, case, llm=llm, registry=registry, steps=steps)
                        )
                    per_template[template.name].append(all(results.values()))
                    for name, passed in results.items():
                        per_check[f"{template.name}: {name}"].append(passed)
        finally:
            pool.close()
    print(_report(per_template, per_check))
    return 0 if all(all(v) for v in per_template.values()) else 1


def _report(per_template: dict[str, list[bool]], per_check: dict[str, list[bool]]) -> str:
    lines = ["template     cases passed"]
    for name, passed in per_template.items():
        lines.append(f"{name:<12} {sum(passed)}/{len(passed)} ({_rate(passed)})")
    lines.append("")
    lines.append("check                                              passed")
    for name, passed in per_check.items():
        lines.append(f"{name:<50} {sum(passed)}/{len(passed)} ({_rate(passed)})")
    return "\n".join(lines)


def _rate(results: list[bool]) -> str:
    return f"{100 * sum(results) / len(results):.0f}%" if results else "n/a"
