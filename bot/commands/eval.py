"""`chatops eval KIND`: measure one part of the product on a public data set.

Each kind is a function below taking (settings, args) and returning an exit code; adding
a kind is one line in KINDS (plus its options in add_arguments, if it has any).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from core.settings import Settings

HELP = "measure retrieval, the agent, agent templates, PII detection and injection screening"


def _retrieval(settings: Settings, args: argparse.Namespace) -> int:
    from rag.eval_command import run_retrieval_eval

    return run_retrieval_eval(settings, args)


def _templates(settings: Settings, args: argparse.Namespace) -> int:
    from bot.templates.eval_command import run_templates_eval

    return run_templates_eval(settings, args)


def _agent(settings: Settings, args: argparse.Namespace) -> int:
    from bot.templates.agent_eval import run_agent_eval

    return run_agent_eval(settings, args)


def _pii(settings: Settings, args: argparse.Namespace) -> int:
    from guardrails.evaluation import run_pii

    return run_pii(settings, args)


def _injection(settings: Settings, args: argparse.Namespace) -> int:
    from guardrails.evaluation import run_injection

    return run_injection(settings, args)


KINDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "retrieval": _retrieval,
    "templates": _templates,
    "agent": _agent,
    "pii": _pii,
    "injection": _injection,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=sorted(KINDS), help="what to evaluate")
    parser.add_argument(
        "--data",
        type=Path,
        help="the data set's folder (retrieval default: "
        "../shared/corpora/rag/pubmedqa/beir_format next to the repository; agent and "
        "templates: the templates folder, default templates)",
    )
    parser.add_argument(
        "--split", default="test", help="retrieval: the qrels file to judge by (default test)"
    )
    parser.add_argument(
        "--max-queries",
        type=int,
        default=None,
        help="retrieval: evaluate a seeded sample of this many questions (default: all)",
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="pii: also score presidio's default recognizers (--data: the pii corpus folder; "
        "injection: --data holds injection/ and email/)",
    )
    agent = parser.add_argument_group("agent: the golden sets through the agent loop")
    agent.add_argument(
        "--base-url",
        help="an OpenAI-compatible server to evaluate, e.g. http://127.0.0.1:8090/v1 "
        "(default: the scripted emulator, each case with its own script); the key is "
        "OPENAI_API_KEY if set",
    )
    agent.add_argument("--model", help="the model name to ask that server for (default LLM_MODEL)")
    agent.add_argument("--template", help="only this template's golden set")
    agent.add_argument(
        "--limit",
        type=int,
        default=None,
        help="run this many cases, taken in turn from each kind (answers, not found, "
        "actions, chains, planted instructions)",
    )
    agent.add_argument(
        "--json",
        type=Path,
        help="also write every case's result to this file (the format --against reads)",
    )
    agent.add_argument(
        "--against",
        type=Path,
        help="a baseline written by --json (e.g. templates/golden/baseline.json): exit 1 only "
        "when a case that passed in it fails now, naming the checks that newly fail",
    )


def run(settings: Settings, args: argparse.Namespace) -> int:
    return KINDS[args.kind](settings, args)
