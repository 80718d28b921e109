"""`chatops eval templates`: every template's golden set against the configured model
(OPENAI_BASE_URL and its fallbacks, each template's own model where it names one), in a
scratch database, scored as `chatops eval agent` scores it (bot/templates/agent_eval.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.templates.agent_eval import configured_model, evaluate, report, select_cases
from core.agent_template import load_templates
from core.settings import Settings

DEFAULT_FOLDER = Path("templates")  # relative to the working directory: the repository


def run_templates_eval(settings: Settings, args: argparse.Namespace) -> int:
    """Exit code 0 when every check of every case passes, 1 otherwise, 2 with no model."""
    model = configured_model(settings)
    if model is None:
        print("No language model is configured (OPENAI_BASE_URL / OPENAI_API_KEY).")
        return 2
    folder = getattr(args, "data", None) or DEFAULT_FOLDER
    chosen = select_cases(load_templates(folder), folder)
    assert chosen is not None  # no template filter
    cases, total = chosen
    evaluation = evaluate(settings, cases, model, total=total)
    print(report(evaluation))
    return 0 if all(r.passed for r in evaluation.results) else 1
