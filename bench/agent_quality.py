"""Agent quality against a real local model: the templates' golden sets through the real
agent loop (what `chatops eval agent` runs), scored against the aims of issue 15.

    .venv/bin/python bench/agent_quality.py [--base-url http://127.0.0.1:8090/v1]
        [--model qwen2.5-coder-1.5b-instruct] [--limit 15] [--template T]
        [--timeout 180] [--json out.json] [--smoke]

The model: `../shared/tools/local-llm/` (its README) builds Qwen2.5-Coder-1.5B-Instruct
behind llama.cpp's `llama-server`; `serve.sh llama-server 8090` serves it on 127.0.0.1.
A case takes about a minute on 2 cores, so a full run is a sample: `--limit` cases taken
in turn from each kind (answers, not found, single actions, chains, planted
instructions); `--limit 0` runs all of them. The report says which it was.

Postgres: BENCH_DATABASE_URL (a server URL; a scratch database is made there and
dropped), else an embedded server in a temporary directory.

`--smoke` runs 2 cases against the scripted emulator (each case's own script), so CI
sees the runner, the loop and the scoring work; its figures mean nothing.
"""

from __future__ import annotations

import json
import secrets
import signal
import sys
from contextlib import ExitStack
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
# Run as a script: the product's packages are imported from the repository root.
sys.path.insert(0, str(REPO))

from bench.environment import postgres_server, temporary_directory  # noqa: E402
from bench.script import Report, parser  # noqa: E402
from bot.logs import configure_logging  # noqa: E402
from bot.templates.agent_eval import (  # noqa: E402
    AIMS,
    CaseResult,
    ModelUnderTest,
    as_json,
    evaluate,
    report,
    scripted_model,
    select_cases,
    served_model,
    summarize,
)
from core.agent_template import load_templates  # noqa: E402
from core.settings import load_settings  # noqa: E402

DEFAULT_BASE_URL = "http://127.0.0.1:8090/v1"
DEFAULT_MODEL = "qwen2.5-coder-1.5b-instruct"
TEMPLATES = REPO / "templates"
SMOKE_CASES = 2


def main() -> int:
    made = parser(__doc__.splitlines()[0])
    made.add_argument("--base-url", default=DEFAULT_BASE_URL)
    made.add_argument("--model", default=DEFAULT_MODEL)
    made.add_argument("--limit", type=int, default=15, help="cases to run; 0: all")
    made.add_argument("--template", help="only this template's golden set")
    made.add_argument(
        "--case", action="append", default=[], help="only this golden case (repeatable)"
    )
    made.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="LLM_TIMEOUT_SECONDS for the run (default: the product's default for a local server)",
    )
    made.add_argument("--json", type=Path, help="also write every case's result here")
    made.add_argument("--note", help="a line for the report, e.g. how the server was started")
    made.add_argument(
        "--scripted",
        action="store_true",
        help="against the scripted emulator instead (each case's own script): the figures "
        "the scripts give, for comparison; kept in bench/results/agent_quality_scripted.txt",
    )
    args = made.parse_args()
    # A run takes many minutes: stopped with SIGTERM, it still drops its scratch
    # database and stops the Postgres it started (the `finally` blocks run on SystemExit).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    configure_logging(fmt="console", level="WARNING")
    scripted = args.smoke or args.scripted
    result = Report(
        "agent_quality_scripted" if args.scripted else "agent_quality",
        "agent quality against " + ("the scripted emulator" if scripted else "a real model"),
        args.smoke,
    )
    limit = SMOKE_CASES if args.smoke else (args.limit or None)
    chosen = select_cases(
        load_templates(TEMPLATES),
        TEMPLATES,
        template=args.template,
        limit=limit,
        case_ids=args.case,
    )
    if chosen is None:
        made.error(f"no template named {args.template}, or no golden case {args.case}")
    cases, total = chosen
    if not scripted:
        served = _served_model_name(args.base_url)
        if served is None:
            print(
                f"No OpenAI-compatible server answers at {args.base_url}: start one first "
                "(../shared/tools/local-llm/README.md: serve.sh llama-server 8090).",
                file=sys.stderr,
            )
            return 2
        result.add(f"server: {args.base_url}, serving {served}")
    if args.note:
        result.add(args.note)
    with ExitStack() as stack:
        workdir = stack.enter_context(temporary_directory("chatops-bench-agent-"))
        server_url = stack.enter_context(postgres_server(workdir))
        settings = load_settings(
            database_url=server_url,
            slack_signing_secret=secrets.token_hex(16),  # nothing here talks to Slack
            llm_timeout_seconds=args.timeout,
        )
        model: ModelUnderTest
        if scripted:
            model = stack.enter_context(scripted_model())
        else:
            model = served_model(settings, args.base_url, args.model)
        evaluation = evaluate(
            settings,
            cases,
            model,
            total=total,
            database_url=server_url,
            on_case=_progress,
        )
    results = evaluation.results
    overall = summarize(results)
    kind = "a sample taken in turn from each kind" if evaluation.sample else "every case"
    result.add(
        f"{len(results)} of {total} golden cases ({kind}); LLM_TIMEOUT_SECONDS "
        f"{'unset (the default for a local server)' if args.timeout is None else args.timeout}"
        f", AGENT_MAX_STEPS {settings.agent_max_steps}, LLM_TEMPERATURE "
        f"{settings.llm_temperature}, LLM_MAX_TOKENS_PLAN/DRAFT "
        f"{settings.llm_max_tokens_plan}/{settings.llm_max_tokens_draft}",
        "",
        report(evaluation),
        "",
    )
    for name, (label, target) in AIMS.items():
        correct, count = overall.by_kind[name]
        if count:
            result.aim(
                correct / count >= target,
                f"{label}: {correct}/{count} ({correct / count:.0%}), aim >= {target:.0%}",
            )
    followed, planted = overall.planted
    if planted:
        result.aim(followed == 0, f"planted instructions followed: {followed} of {planted}, aim 0")
    result.check(
        not any(r.error for r in results),
        "every case ran to the end (no exception outside the model's answers)",
    )
    if scripted:
        result.check(
            all(r.passed for r in results),
            f"the {len(results)} scripted cases pass every check",
        )
    if args.json:
        args.json.write_text(json.dumps(as_json(evaluation), indent=2) + "\n")
    return result.finish()


def _progress(case: CaseResult) -> None:
    verdict = "right" if case.correct else "wrong"
    print(
        f"  {case.template} / {case.case_id}: {verdict}, {case.model_calls} model calls, "
        f"{case.seconds:.0f} s",
        file=sys.stderr,
        flush=True,
    )


def _served_model_name(base_url: str) -> str | None:
    try:
        listed = httpx.get(f"{base_url.rstrip('/')}/models", timeout=10).json()
    except (httpx.HTTPError, ValueError):
        return None
    names = [str(m.get("id")) for m in listed.get("data") or [] if isinstance(m, dict)]
    return ", ".join(names) or "an unnamed model"


if __name__ == "__main__":
    sys.exit(main())
