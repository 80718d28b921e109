"""`chatops golden from-feedback --tenant T [--template NAME] [--since DATE]`: candidate
golden-set entries from rated answers, approval edits and rejections, as JSONL on stdout
(`> candidates.jsonl`), a count per origin on stderr.

`chatops golden saved --tenant T [--template NAME]`: the candidates admins made with
"Make a golden case" on the `/agent feedback` view (review/golden_cases.py), the same
JSONL, oldest first.

A person confirms each candidate (review/golden_candidates.py says how) before it joins
a template's golden set in templates/golden/.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from datetime import UTC, date, datetime

import structlog

from core.settings import Settings

HELP = "candidate golden-set entries from people's feedback, for a person to confirm"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=["from-feedback", "saved"],
        help="from-feedback: candidates from all feedback; saved: those admins made in Slack",
    )
    parser.add_argument(
        "--tenant", required=True, help="the tenant: its Slack team id (T0123...) or numeric id"
    )
    parser.add_argument(
        "--template",
        help="only runs of this agent template, and reviews recorded for it (default: all)",
    )
    parser.add_argument(
        "--since",
        type=date.fromisoformat,
        help="from-feedback: only feedback from this day on, YYYY-MM-DD (default: all of it)",
    )


def run(settings: Settings, args: argparse.Namespace) -> int:
    # Imported here: the PII detector loads presidio, seconds `chatops --help` need not spend.
    from bot.commands.checks import require_current_schema
    from core.db import open_pool
    from core.warmup import Warming
    from guardrails.pii import build_detector
    from guardrails.redaction import Redactor
    from rag.sources import SourceError, resolve_tenant
    from review.golden_candidates import golden_candidates

    # stdout carries the JSONL, so this process's logs go to stderr.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, force=True)
    require_current_schema(settings)
    if args.action == "saved":
        return _saved(settings, args)
    redactor = Redactor(Warming.loaded("the personal-data detector", build_detector()))
    since = datetime.combine(args.since or date.min, datetime.min.time(), tzinfo=UTC)
    origins: Counter[str] = Counter()
    pool = open_pool(settings.database_url, max_size=1)
    try:
        try:
            tenant_id = resolve_tenant(pool, args.tenant)
        except SourceError as exc:
            print(f"chatops golden: {exc}", file=sys.stderr)
            return 2
        with pool.connection() as conn:
            for candidate in golden_candidates(
                conn,
                tenant_id=tenant_id,
                since=since,
                template=args.template,
                mask=lambda text: redactor.redact(text).text,
            ):
                origins[candidate["candidate"]["origin"]] += 1
                print(json.dumps(candidate, ensure_ascii=False))
    finally:
        pool.close()
    counts = ", ".join(f"{n} {origin}" for origin, n in sorted(origins.items())) or "none"
    print(f"{sum(origins.values())} candidates ({counts})", file=sys.stderr)
    return 0


def _saved(settings: Settings, args: argparse.Namespace) -> int:
    """Already masked when they were made: printed as stored."""
    from core.db import open_pool
    from rag.sources import SourceError, resolve_tenant
    from review.golden_cases import saved_candidates

    pool = open_pool(settings.database_url, max_size=1)
    try:
        try:
            tenant_id = resolve_tenant(pool, args.tenant)
        except SourceError as exc:
            print(f"chatops golden: {exc}", file=sys.stderr)
            return 2
        with pool.connection() as conn:
            candidates = saved_candidates(conn, tenant_id, args.template)
    finally:
        pool.close()
    for candidate in candidates:
        print(json.dumps(candidate, ensure_ascii=False))
    print(
        f"{len(candidates)} {'candidate' if len(candidates) == 1 else 'candidates'} made in Slack",
        file=sys.stderr,
    )
    return 0
