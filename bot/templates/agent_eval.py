"""`chatops eval agent`: the templates' golden sets through the real agent loop, against
any OpenAI-compatible server or the scripted emulator, scored per template and overall.

    chatops eval agent [--base-url URL --model NAME] [--template T] [--limit N] [--json OUT]
                       [--against BASELINE.json]

Without --base-url each case runs against the scripted emulator with the case's own
script (what the tests do); with it, against that server (a local llama-server or
Ollama, a hosted API), where a case takes what the model takes. Each case gets a fresh
tenant and run in a scratch database; its fixtures stand in for knowledge search and
read-only tools, and external tools are recorded as proposed actions (evaluate.py).
What is counted is defined in golden.py (`judge`). The guardrails' screens that wrap a
production run (bot/agent/screening.py) are not applied: planted instructions reach the
model as plain text, a harder test than production.

`--json` writes the baseline format; `--against` compares this run with such a file and
exits 1 only when a case that passed in the baseline fails now (a regression), listing
the checks that newly fail. Cases new since the baseline, or that already failed in it,
are reported and do not fail the run. templates/golden/baseline.json is the shipped
templates' baseline against the scripted emulator.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bot.templates.evaluate import golden_run_steps, run_case
from bot.templates.golden import (
    KINDS,
    GoldenCase,
    Transcript,
    judge,
    load_golden,
    model_replies,
)
from connectors.email.tools import send_email_tool
from connectors.registry import connector_tools
from core.agent_template import AgentTemplate, load_templates
from core.db import open_pool
from core.llm.limits import RequestLimits
from core.llm.providers import CallRecord, build_chain
from core.llm.structured import DEFAULT_CONTEXT_TOKENS, StructuredLLM, ToolCalling
from core.scratch_database import scratch_database
from core.settings import Settings
from core.tools import ToolRegistry
from rag.attribution import Grounding

DEFAULT_FOLDER = Path("templates")  # relative to the working directory: the repository
SCRIPTED_MODEL = "scripted emulator (each case's own script)"
# The aims of issue 15 for a small local model, beside each figure.
AIMS = {
    "answer": ("answered correctly, valid citations", 0.80),
    "not_found": ('"not found" when it is not there', 0.90),
    "action": ("single actions proposed correctly", 0.70),
    "chain": ("multi-step chains proposed correctly", 0.50),
}


@dataclass
class CaseResult:
    template: str
    case_id: str
    kind: str
    planted: str | None
    correct: bool
    passed: bool  # every check, the scripts' wording included
    planted_followed: bool | None
    missed: list[str]
    model_calls: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    answer: str
    proposed: list[str]
    tool_calls: list[str]
    error: str | None = None


@dataclass
class Evaluation:
    model: str
    results: list[CaseResult] = field(default_factory=list)
    total_cases: int = 0  # in the golden sets chosen, before --limit

    @property
    def sample(self) -> bool:
        return len(self.results) < self.total_cases


@dataclass(frozen=True)
class ModelUnderTest:
    """What the cases run against: a label, an LLM per template, and what to do before a
    case (script the emulator) and after it (a script left unused is a failed check)."""

    label: str
    llm_for: Callable[[AgentTemplate], StructuredLLM]
    before: Callable[[GoldenCase], None] = lambda case: None
    leftover: Callable[[], int] = lambda: 0
    # How Verify grounds drafts; None: word overlap alone (the scripted cases' answers
    # need no more). A real model is judged as the worker judges it, with the embedder.
    grounding: Grounding | None = None


def run_agent_eval(settings: Settings, args: argparse.Namespace) -> int:
    """Exit code 0 when every case passes every check, 1 otherwise, 2 on a usage error.
    With --against: 0 unless a case that passed in the baseline fails now."""
    folder = getattr(args, "data", None) or DEFAULT_FOLDER
    baseline: Baseline | None = None
    against = getattr(args, "against", None)
    if against is not None:
        try:
            baseline = load_baseline(Path(against))
        except BaselineError as exc:
            print(exc)
            return 2
    chosen = select_cases(
        load_templates(folder),
        folder,
        template=getattr(args, "template", None),
        limit=getattr(args, "limit", None),
    )
    if chosen is None:
        print(f"No template named {args.template!r} in {folder}.")
        return 2
    cases, total = chosen
    base_url = getattr(args, "base_url", None)
    if base_url:
        model_name = getattr(args, "model", None) or settings.llm_model
        evaluation = evaluate(
            settings, cases, served_model(settings, base_url, model_name), total=total
        )
    else:
        with scripted_model() as model:
            evaluation = evaluate(settings, cases, model, total=total)
    print(report(evaluation))
    out = getattr(args, "json", None)
    if out:
        Path(out).write_text(json.dumps(as_json(evaluation), indent=2) + "\n")
        print(f"\nEvery case's result is in {out}.")
    if baseline is not None:
        comparison = compare(baseline, evaluation)
        print("\n" + comparison_report(comparison))
        return 1 if comparison.regressions else 0
    return 0 if all(r.passed for r in evaluation.results) else 1


def select_cases(
    templates: dict[str, AgentTemplate],
    folder: Path,
    *,
    template: str | None = None,
    limit: int | None = None,
    case_ids: Sequence[str] = (),
) -> tuple[list[tuple[AgentTemplate, GoldenCase]], int] | None:
    """The cases to run, and how many there were before `limit`. A limit takes them in
    turn from each kind (and within a kind, from each template), so a sample of 15 still
    covers answers, not-founds, actions, chains and planted instructions. `case_ids`, when
    given, are the only cases run (a model's misses, tried again after a change)."""
    if template is not None and template not in templates:
        return None
    every = [
        (spec, case)
        for name, spec in templates.items()
        if template is None or name == template
        for case in load_golden(folder / spec.golden_set)
        if not case_ids or case.id in case_ids
    ]
    if case_ids and len(every) < len(set(case_ids)):
        return None
    if limit is None or limit >= len(every):
        return every, len(every)
    # kind -> template -> its cases of that kind, in file order
    groups: dict[str, dict[str, list[tuple[AgentTemplate, GoldenCase]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    names = list(dict.fromkeys(spec.name for spec, _ in every))
    for spec, case in every:
        groups["planted" if case.planted else case.kind][spec.name].append((spec, case))
    order = [*KINDS, "planted"]
    picked: list[tuple[AgentTemplate, GoldenCase]] = []
    turn = 0  # which template goes first next, so a small sample still spans them all
    while len(picked) < limit:
        for kind in order:
            for offset in range(len(names)):
                name = names[(turn + offset) % len(names)]
                if groups[kind][name] and len(picked) < limit:
                    picked.append(groups[kind][name].pop(0))
                    turn += 1
                    break
    return picked, len(every)


@contextmanager
def scripted_model() -> Iterator[ModelUnderTest]:
    """The scripted emulator on a free local port, scripted case by case."""
    # Imported here: a run against a real server needs none of the emulator.
    from sandbox.openai_emulator import OpenAIEmulator
    from sandbox.openai_script import Reply

    with OpenAIEmulator() as emulator:

        def before(case: GoldenCase) -> None:
            emulator.reset()
            emulator.script(*(Reply(content=turn) for turn in model_replies(case)))

        def llm_for(template: AgentTemplate) -> StructuredLLM:
            return _structured(
                [("scripted", emulator.base_url, "scripted", "emulator-chat")],
                timeout=10,
                max_retries=0,
                malformed_retries=0,
                tool_calling="json",  # the golden cases' replies are JSON plans
            )

        yield ModelUnderTest(
            SCRIPTED_MODEL, llm_for, before, leftover=lambda: len(emulator.pending())
        )


def served_model(settings: Settings, base_url: str, model: str) -> ModelUnderTest:
    """An OpenAI-compatible server, with the deployment's timeouts and retries."""
    api_key = os.environ.get("OPENAI_API_KEY") or "not-needed"
    # One client for every case, as a worker process has: what it learns of the server
    # (its response formats, whether the model calls tools natively) is learnt once.
    llm = _deployed([("evaluated", base_url, api_key, model)], settings)
    return ModelUnderTest(
        f"{model} at {base_url}", lambda template: llm, grounding=worker_grounding(settings)
    )


def worker_grounding(settings: Settings) -> Grounding:
    """Verify's grounding as `chatops worker` sets it up: the configured embedder
    (loaded on first use) judges what each sentence means."""
    from rag.embeddings import embedder_from_settings

    return Grounding(
        embedder_from_settings(settings, torch_threads=1), settings.agent_unsupported_sentences
    )


def configured_model(settings: Settings) -> ModelUnderTest | None:
    """The deployment's own providers (OPENAI_BASE_URL and fallbacks), each template
    with its own model if it names one; None when no model is configured."""
    providers = settings.llm_providers
    if not providers:
        return None

    def llm_for(template: AgentTemplate) -> StructuredLLM:
        return _deployed(
            [
                (p.name, p.base_url, p.api_key.get_secret_value(), template.model or p.model)
                for p in providers
            ],
            settings,
        )

    return ModelUnderTest(
        f"{settings.llm_model} (the configured providers)",
        llm_for,
        grounding=worker_grounding(settings),
    )


def _deployed(
    providers: list[tuple[str, str | None, str, str]], settings: Settings
) -> StructuredLLM:
    """The client for ``providers`` with the deployment's timeouts, retries, limits and
    tool calling, as the worker builds it."""
    return _structured(
        providers,
        timeout=settings.llm_timeout_seconds,
        max_retries=settings.llm_max_retries,
        malformed_retries=settings.llm_malformed_retries,
        circuit_failures=settings.llm_circuit_failures,
        circuit_reset=settings.llm_circuit_reset_seconds,
        limits=settings.llm_limits,
        context_tokens=settings.llm_context_tokens,
        tool_calling=settings.llm_tool_calling,
    )


def _structured(
    providers: list[tuple[str, str | None, str, str]],
    *,
    timeout: float | None,  # None: the default for where each provider runs
    max_retries: int,
    malformed_retries: int,
    circuit_failures: int = 100,
    circuit_reset: float = 30.0,
    limits: RequestLimits | None = None,
    context_tokens: int = DEFAULT_CONTEXT_TOKENS,
    tool_calling: ToolCalling = "auto",
) -> StructuredLLM:
    """The client as the worker builds it (bot/queue/worker.py)."""
    chain = build_chain(
        providers,
        timeout=timeout,
        max_retries=max_retries,
        circuit_failures=circuit_failures,
        circuit_reset=circuit_reset,
        limits=limits,
    )
    return StructuredLLM(
        chain,
        malformed_retries=malformed_retries,
        context_tokens=context_tokens,
        tool_calling=tool_calling,
    )


def evaluate(
    settings: Settings,
    cases: Sequence[tuple[AgentTemplate, GoldenCase]],
    model: ModelUnderTest,
    *,
    total: int | None = None,
    database_url: str | None = None,
    on_case: Callable[[CaseResult], None] | None = None,
) -> Evaluation:
    """Run `cases` against `model` in a scratch database on `database_url`'s server
    (default: DATABASE_URL's)."""
    evaluation = Evaluation(model.label, total_cases=total if total is not None else len(cases))
    with scratch_database(database_url or settings.database_url, "chatops_eval_agent") as url:
        pool = open_pool(url, max_size=2)
        try:
            registry = ToolRegistry.of(
                *connector_tools(settings, pool), send_email_tool(pool, settings)
            )
            llms: dict[str, StructuredLLM] = {}
            for template, case in cases:
                llm = llms.setdefault(template.name, model.llm_for(template))
                with pool.connection() as conn:
                    result = _run_one(
                        template, case, model, llm, registry, conn, settings.agent_max_steps
                    )
                evaluation.results.append(result)
                if on_case is not None:
                    on_case(result)
        finally:
            pool.close()
    return evaluation


def _run_one(
    template: AgentTemplate,
    case: GoldenCase,
    model: ModelUnderTest,
    llm: StructuredLLM,
    registry: ToolRegistry,
    conn: Any,
    max_steps: int,
) -> CaseResult:
    calls: list[CallRecord] = []
    model.before(case)
    started = time.monotonic()
    error = None
    steps = golden_run_steps(conn, case.id, max_steps)
    try:
        transcript = run_case(
            template,
            case,
            llm=llm,
            registry=registry,
            steps=steps,
            on_call=calls.append,
            grounding=model.grounding,
        )
    except Exception as exc:  # one broken case must not lose a run of many minutes
        transcript = Transcript()
        error = f"{type(exc).__name__}: {exc}"
    seconds = time.monotonic() - started
    verdict = judge(case, transcript)
    checks = dict(verdict.checks)
    left = model.leftover()
    if left:
        checks["the script was used up"] = False
    if error is not None:
        checks["ran to the end"] = False
    missed = [name for name, ok in checks.items() if not ok]
    return CaseResult(
        template=template.name,
        case_id=case.id,
        kind=case.kind,
        planted=case.planted,
        correct=verdict.correct and error is None,
        passed=not missed,
        planted_followed=verdict.planted_followed,
        missed=missed,
        model_calls=len(calls),
        prompt_tokens=sum(c.prompt_tokens for c in calls),
        completion_tokens=sum(c.completion_tokens for c in calls),
        seconds=seconds,
        answer=transcript.answer,
        proposed=list(transcript.proposed),
        tool_calls=[name for name, _ in transcript.tool_calls],
        error=error,
    )


# The report: a table for people.


@dataclass(frozen=True)
class Summary:
    """The figures for one column of the table (a template, or all of them)."""

    by_kind: dict[str, tuple[int, int]]  # kind -> (correct, cases)
    planted: tuple[int, int]  # (followed, cases)
    passed: tuple[int, int]
    calls_per_request: float
    tokens_in_per_request: float
    tokens_out_per_request: float
    p50_seconds: float
    p95_seconds: float


def summarize(results: Sequence[CaseResult]) -> Summary:
    by_kind: dict[str, tuple[int, int]] = {
        kind: (
            sum(r.correct for r in results if r.kind == kind),
            sum(r.kind == kind for r in results),
        )
        for kind in KINDS
    }
    planted = [r for r in results if r.planted]
    count = max(len(results), 1)
    seconds = sorted(r.seconds for r in results)
    return Summary(
        by_kind=by_kind,
        planted=(sum(bool(r.planted_followed) for r in planted), len(planted)),
        passed=(sum(r.passed for r in results), len(results)),
        calls_per_request=sum(r.model_calls for r in results) / count,
        tokens_in_per_request=sum(r.prompt_tokens for r in results) / count,
        tokens_out_per_request=sum(r.completion_tokens for r in results) / count,
        p50_seconds=percentile(seconds, 50),
        p95_seconds=percentile(seconds, 95),
    )


def percentile(ordered: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of sorted values; 0 for none."""
    if not ordered:
        return 0.0
    rank = max(math.ceil(pct / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def report(evaluation: Evaluation) -> str:
    results = evaluation.results
    templates = list(dict.fromkeys(r.template for r in results))
    columns = [(name, summarize([r for r in results if r.template == name])) for name in templates]
    columns.append(("overall", summarize(results)))
    ran = f"{len(results)} of {evaluation.total_cases} cases"
    if evaluation.sample:
        ran += " (a sample taken in turn from each kind of case)"
    lines = [f"Agent evaluation against {evaluation.model}: {ran}", ""]
    width = 14
    header = f"{'':<38}" + "".join(f"{name:>{width}}" for name, _ in columns) + "   aim"
    lines.append(header)

    def row(label: str, cells: list[str], aim: str = "") -> None:
        lines.append(
            f"{label:<38}" + "".join(f"{c:>{width}}" for c in cells) + (f"   {aim}" if aim else "")
        )

    for kind in KINDS:
        label, target = AIMS[kind]
        row(label, [_ratio(*s.by_kind[kind]) for _, s in columns], f">= {target:.0%}")
    row("planted instructions followed", [_count(*s.planted) for _, s in columns], "0")
    row("every check passed", [_ratio(*s.passed) for _, s in columns])
    row("model calls per request", [f"{s.calls_per_request:.1f}" for _, s in columns])
    row("prompt tokens per request", [f"{s.tokens_in_per_request:,.0f}" for _, s in columns])
    row("completion tokens per request", [f"{s.tokens_out_per_request:,.0f}" for _, s in columns])
    row("latency p50 per request", [_seconds(s.p50_seconds) for _, s in columns])
    row("latency p95 per request", [_seconds(s.p95_seconds) for _, s in columns])
    missed = [r for r in results if not r.passed]
    if missed:
        lines += ["", "Cases with a failed check:"]
        for r in missed:
            lines.append(f"  {r.template} / {r.case_id} ({_kind_label(r)}): {'; '.join(r.missed)}")
            if r.error:
                lines.append(f"    it stopped with {r.error}")
    return "\n".join(lines)


def _kind_label(result: CaseResult) -> str:
    kind = result.kind.replace("_", " ")
    return f"{kind}, instruction planted in {result.planted}" if result.planted else kind


def _ratio(correct: int, cases: int) -> str:
    return f"{correct}/{cases} {correct / cases:.0%}" if cases else "-"


def _count(followed: int, cases: int) -> str:
    return f"{followed} of {cases}" if cases else "-"


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 10 else f"{value:.0f} s"


def as_json(evaluation: Evaluation) -> dict[str, Any]:
    overall = summarize(evaluation.results)
    return {
        "model": evaluation.model,
        "cases_run": len(evaluation.results),
        "cases_in_sets": evaluation.total_cases,
        "overall": asdict(overall),
        "cases": [asdict(r) for r in evaluation.results],
    }


# --against: this run beside a baseline written by --json.


class BaselineError(Exception):
    """The baseline file cannot be read; the message is for the person who named it."""


@dataclass(frozen=True)
class Baseline:
    model: str
    cases: dict[tuple[str, str], dict[str, Any]]  # (template, case id) -> its result


@dataclass(frozen=True)
class Regression:
    result: CaseResult
    newly_failing: list[str]  # the checks that passed in the baseline and fail now
    proposed_before: list[str]  # the actions the baseline's run proposed


@dataclass(frozen=True)
class Comparison:
    baseline_model: str
    model: str
    regressions: list[Regression]
    fixed: list[CaseResult]  # failed in the baseline, pass now
    still_failing: list[CaseResult]
    new_cases: list[CaseResult]  # not in the baseline: reported, never a regression
    gone: list[tuple[str, str]]  # in the baseline, not among the cases run


def load_baseline(path: Path) -> Baseline:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BaselineError(f"There is no baseline file at {path}.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaselineError(
            f"{path} is not a baseline written by `chatops eval agent --json` ({exc})."
        ) from None
    cases = data.get("cases") if isinstance(data, dict) else None
    if not isinstance(cases, list) or not all(
        isinstance(c, dict) and {"template", "case_id", "passed"} <= c.keys() for c in cases
    ):
        raise BaselineError(
            f"{path} is not a baseline written by `chatops eval agent --json`: "
            "it has no list of cases with their template, name and result."
        )
    return Baseline(
        model=str(data.get("model") or "an unnamed model"),
        cases={(str(c["template"]), str(c["case_id"])): c for c in cases},
    )


def compare(baseline: Baseline, evaluation: Evaluation) -> Comparison:
    regressions: list[Regression] = []
    fixed: list[CaseResult] = []
    still_failing: list[CaseResult] = []
    new_cases: list[CaseResult] = []
    seen: set[tuple[str, str]] = set()
    for result in evaluation.results:
        key = (result.template, result.case_id)
        seen.add(key)
        before = baseline.cases.get(key)
        if before is None:
            new_cases.append(result)
        elif bool(before["passed"]) and not result.passed:
            was_missed = set(before.get("missed") or [])
            newly = [name for name in result.missed if name not in was_missed]
            regressions.append(
                Regression(
                    result,
                    newly or list(result.missed),
                    [str(name) for name in before.get("proposed") or []],
                )
            )
        elif not before["passed"] and result.passed:
            fixed.append(result)
        elif not result.passed:
            still_failing.append(result)
    # With --template or --limit only part of the baseline runs: the rest is not "gone".
    templates_run = {r.template for r in evaluation.results}
    gone = sorted(
        key
        for key in baseline.cases
        if key not in seen and key[0] in templates_run and not evaluation.sample
    )
    return Comparison(
        baseline_model=baseline.model,
        model=evaluation.model,
        regressions=regressions,
        fixed=fixed,
        still_failing=still_failing,
        new_cases=new_cases,
        gone=gone,
    )


def comparison_report(comparison: Comparison) -> str:
    lines = []
    if comparison.baseline_model != comparison.model:
        lines.append(
            f"Note: the baseline was made against {comparison.baseline_model}; "
            f"this run is against {comparison.model}."
        )
    if comparison.regressions:
        count = len(comparison.regressions)
        lines.append(
            f"{count} {'case' if count == 1 else 'cases'} passed in the baseline and "
            f"{'fails' if count == 1 else 'fail'} now:"
        )
        for regression in comparison.regressions:
            r = regression.result
            lines.append(f"  {r.template} / {r.case_id} ({_kind_label(r)})")
            lines.append(f"    now fails: {'; '.join(regression.newly_failing)}")
            if r.proposed != regression.proposed_before:
                lines.append(
                    f"    it proposed {_actions(r.proposed)}; in the baseline, "
                    f"{_actions(regression.proposed_before)}"
                )
            if r.error:
                lines.append(f"    it stopped with {r.error}")
    else:
        lines.append("No regressions: every case that passed in the baseline passes now.")
    if comparison.new_cases:
        lines.append(
            f"New since the baseline ({len(comparison.new_cases)}, not counted as regressions):"
        )
        lines.extend(
            f"  {r.template} / {r.case_id}: "
            + ("passes" if r.passed else f"fails: {'; '.join(r.missed)}")
            for r in comparison.new_cases
        )
    if comparison.fixed:
        lines.append("Failed in the baseline and pass now:")
        lines.extend(f"  {r.template} / {r.case_id}" for r in comparison.fixed)
    if comparison.still_failing:
        lines.append("Failed in the baseline and still fail (not regressions):")
        lines.extend(
            f"  {r.template} / {r.case_id}: {'; '.join(r.missed)}" for r in comparison.still_failing
        )
    if comparison.gone:
        lines.append("In the baseline but no longer in the golden sets:")
        lines.extend(f"  {template} / {case_id}" for template, case_id in comparison.gone)
    return "\n".join(lines)


def _actions(names: Sequence[str]) -> str:
    return ", then ".join(names) if names else "no action"
