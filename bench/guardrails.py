"""Guardrails throughput and detection quality on this machine.

    .venv/bin/python bench/guardrails.py [--messages 2000] [--db-messages 300]
                                         [--corpora ../shared/corpora] [--smoke]

1. Messages per second through the screen (PII detection and replacement, injection
   heuristics, toxicity off and on) for 500-character messages, one thread, so the CPU
   figure is per core. Side by side: presidio's default analyzer configuration as far as
   it runs offline (all predefined recognizers on the NoOp NLP engine). Then the whole
   `Guardrails.screen_inbound` with placeholders kept in Postgres (embedded, throwaway).
2. Precision, recall and F1 per entity on the PII corpus, ours against presidio's default.
3. People's names: the CRF name tagger (guardrails/person_tagger.py) was trained on one
   half of the corpus (`pii_halves`); F1 on that half and on the held-out half, side by
   side, and every entity's F1 on the held-out half; the tagger's own rate on one core.

`--smoke` runs every step on a few messages and a slice of each half, in seconds.

The toxicity model is the tests' tiny one-layer BERT: it measures the cost of the
pipeline around a model, not of a real toxicity model, which is far larger.
Writes what it prints to bench/results/guardrails.txt.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.scratch_db import bench_database  # noqa: E402
from core.warmup import Warming  # noqa: E402
from guardrails.corpora import load_pii_corpus, pii_halves  # noqa: E402
from guardrails.entities import PERSON  # noqa: E402
from guardrails.evaluation import pii_table, score_pii  # noqa: E402
from guardrails.injection import InjectionScreen  # noqa: E402
from guardrails.luhn import luhn_valid  # noqa: E402
from guardrails.person_tagger import PersonTagger  # noqa: E402
from guardrails.pii import PiiDetector, build_detector, build_presidio_default_detector  # noqa: E402
from guardrails.redaction import Redactor  # noqa: E402
from guardrails.toxicity import ToxicityCheck  # noqa: E402

MESSAGE_CHARS = 500
SEED = 20261122
PII_SHARE = 0.5  # of the messages carry personal data, the rest are plain questions
AIM_MSGS_PER_CORE = 1_000  # toxicity off
AIM_F1 = 0.9
AIM_ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN")
AIM_PERSON_F1 = 0.85  # on the held-out half
AIM_PERSON_MSGS_PER_CORE = 500  # the whole screen, names included
SMOKE_MESSAGES = 200
SMOKE_DB_MESSAGES = 20
SMOKE_TEXTS_PER_HALF = 300
WARMUP = 50
ROUNDS = 5  # passes per CPU-only screen; the fastest is reported

FIRST = ["Maria", "James", "Jennifer", "Robert", "Linda", "Michael", "Susan", "David"]
LAST = ["Gomez", "Walsh", "Okafor", "Nguyen", "Schmidt", "Rossi", "Kowalski", "Brown"]
SENTENCES = [
    "I was charged twice for order {order} last week and would like a refund.",
    "Could you tell me when the new pricing for the team plan takes effect?",
    "The export to CSV keeps timing out for our workspace since Monday morning.",
    "We need to add three more seats before the quarterly review on Thursday.",
    "Is there a way to move our invoices to a different billing address?",
    "The integration with the CRM stopped syncing contacts after the update.",
    "Our finance team asked for a copy of the signed agreement from March.",
    "Please let me know what the next steps are and how long it usually takes.",
    "Thanks a lot for your help, we really appreciate the quick service.",
]
PII_SENTENCES = [
    "You can reach me at {email} or on {phone}.",
    "The card ending in {card} was used for that payment.",
    "My colleague {first} {last} saw the same problem on the invoice.",
    "For the wire transfer our IBAN is {iban}.",
]


def _luhn_complete(prefix: str) -> str:
    """`prefix` plus the check digit that makes it pass the Luhn check."""
    for digit in "0123456789":
        candidate = prefix + digit
        if luhn_valid(candidate):
            return candidate
    raise AssertionError("unreachable")


def make_messages(count: int, rng: random.Random) -> list[str]:
    messages = []
    for index in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        values = {
            "order": str(rng.randint(10_000_000, 99_999_999)),
            "email": f"{first.lower()}.{last.lower()}@example.com",
            "phone": f"+{rng.choice([1, 34, 44, 49])} {rng.randint(200, 999)} "
            f"{rng.randint(100, 999)} {rng.randint(1000, 9999)}",
            "card": " ".join(
                _luhn_complete("4" + "".join(str(rng.randint(0, 9)) for _ in range(14)))[i : i + 4]
                for i in range(0, 16, 4)
            ),
            "first": first,
            "last": last,
            "iban": "GB82 WEST 1234 5698 7654 32",
        }
        parts = [f"Hi team, this is {first} from accounts."]
        with_pii = index < count * PII_SHARE
        pool = SENTENCES + (PII_SENTENCES if with_pii else [])
        while sum(len(p) + 1 for p in parts) < MESSAGE_CHARS:
            parts.append(rng.choice(pool).format(**values))
        if with_pii and not any("@" in p for p in parts):
            parts.insert(1, PII_SENTENCES[0].format(**values))
        text = " ".join(parts)[:MESSAGE_CHARS]
        messages.append(text)
    rng.shuffle(messages)
    return messages


@dataclass(frozen=True)
class Throughput:
    name: str
    messages: int
    cpu_seconds: float
    wall_seconds: float

    @property
    def per_core(self) -> float:
        return self.messages / self.cpu_seconds

    @property
    def wall(self) -> float:
        return self.messages / self.wall_seconds


@dataclass(frozen=True)
class Job:
    name: str
    screen: Callable[[str], object]
    messages: list[str]


def _one_pass(job: Job) -> Throughput:
    cpu, wall = time.process_time(), time.perf_counter()
    for text in job.messages:
        job.screen(text)
    return Throughput(
        job.name, len(job.messages), time.process_time() - cpu, time.perf_counter() - wall
    )


def measure(jobs: list[Job], rounds: int) -> list[Throughput]:
    """Each job's fastest of `rounds` passes, the jobs taking turns pass by pass: the other
    engineers' work on this shared machine only ever slows a pass down, and taking turns
    spreads it over all jobs alike."""
    for job in jobs:
        for text in job.messages[:WARMUP]:
            job.screen(text)
    best: dict[str, Throughput] = {}
    for _ in range(rounds):
        for job in jobs:
            result = _one_pass(job)
            if job.name not in best or result.cpu_seconds < best[job.name].cpu_seconds:
                best[job.name] = result
    return [best[job.name] for job in jobs]


def cpu_screen(
    detector: PiiDetector, injection: InjectionScreen, toxicity: ToxicityCheck | None
) -> Callable[[str], object]:
    redactor = Redactor(Warming.loaded("the detector", detector))

    def screen(text: str) -> object:
        if toxicity is not None:
            toxicity.check(text)
        verdict = injection.screen(text)
        return redactor.redact(text).text, verdict.flagged

    return screen


def measure_with_postgres(name: str, messages: list[str]) -> Throughput:
    from core.db import open_pool
    from core.settings import load_settings
    from guardrails.facade import build_guardrails

    with bench_database("bench_guardrails") as url:
        pool = open_pool(url, max_size=2)
        try:
            with pool.connection() as conn:
                row = conn.execute(
                    "INSERT INTO tenants (name) VALUES ('bench') RETURNING id"
                ).fetchone()
            assert row is not None
            tenant = int(row["id"])
            settings = load_settings(
                database_url=url,
                slack_signing_secret="bench-only",  # noqa: S106 - never leaves this run
                guardrails_vault_key="bench-only vault key",
            )
            guardrails = build_guardrails(settings, pool)
            counter = iter(range(10**9))

            def screen(text: str) -> object:
                # A conversation per message: each one numbers and stores its own values.
                return guardrails.screen_inbound(tenant, f"bench:{next(counter)}", text)

            return measure([Job(name, screen, messages)], 1)[0]
        finally:
            pool.close()


def throughput_table(rows: list[Throughput]) -> str:
    lines = [f"{'screen':<52}{'msgs':>6}{'msgs/s per core':>17}{'msgs/s wall':>13}"]
    lines.append("-" * len(lines[0]))
    for r in rows:
        lines.append(f"{r.name:<52}{r.messages:>6}{r.per_core:>17,.0f}{r.wall:>13,.0f}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--db-messages", type=int, default=300)
    parser.add_argument("--corpora", type=Path, default=REPO.parent / "shared" / "corpora")
    parser.add_argument("--smoke", action="store_true", help="a few seconds, same path")
    args = parser.parse_args()
    rounds = 1 if args.smoke else ROUNDS
    if args.smoke:
        args.messages = min(args.messages, SMOKE_MESSAGES)
        args.db_messages = min(args.db_messages, SMOKE_DB_MESSAGES)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import structlog

    # The screens log one line per message with hidden PII; not what is measured here.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    started = time.perf_counter()

    from guardrails.classifier import load_classifier, set_inference_threads
    from testbed.tiny_model import build_tiny_classifier

    out: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        out.append(line)

    say(f"chatops-agent guardrails benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    say(
        f"machine: {os.cpu_count()} cores ({platform.system()} {platform.machine()}, load avg "
        f"at start {', '.join(f'{x:.2f}' for x in os.getloadavg())}), Python "
        f"{platform.python_version()}, presidio-analyzer {version('presidio-analyzer')}, "
        f"transformers {version('transformers')}, torch {version('torch')}"
    )
    rng = random.Random(SEED)
    messages = make_messages(args.messages, rng)
    with_pii = sum("@" in m for m in messages)
    say(
        f"messages: {len(messages)} of {MESSAGE_CHARS} characters, {with_pii} with personal "
        "data (email, phone, card, name, IBAN), the rest plain support questions"
    )
    say()

    ours = build_detector()
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)  # its per-language notes
    presidio = build_presidio_default_detector()
    injection = InjectionScreen()
    pii_only = [m for m in messages if "@" in m]
    with tempfile.TemporaryDirectory(prefix="bench-tiny-model-") as tmp:
        model_dir = build_tiny_classifier(Path(tmp))["toxicity"]
        set_inference_threads(1)  # GUARDRAILS_INFERENCE_THREADS' default
        toxicity = ToxicityCheck(load_classifier(str(model_dir)), threshold=0.8)
        rows = measure(
            [
                Job(
                    "guardrails: PII + injection, toxicity off",
                    cpu_screen(ours, injection, None),
                    messages,
                ),
                Job(
                    "guardrails, toxicity off, only messages with PII",
                    cpu_screen(ours, injection, None),
                    pii_only,
                ),
                Job(
                    "presidio default (NoOp NLP) + injection, tox. off",
                    cpu_screen(presidio, injection, None),
                    messages,
                ),
                Job(
                    "guardrails without names, toxicity off",
                    cpu_screen(build_detector(names=False), injection, None),
                    messages,
                ),
                Job("the name tagger alone", PersonTagger().find, messages),
            ],
            rounds,
        )
        rows += measure(
            [
                Job(
                    "guardrails: PII + injection, toxicity on (tiny)",
                    cpu_screen(ours, injection, toxicity),
                    messages[: len(messages) // 4],
                )
            ],
            1,
        )
    rows.append(
        measure_with_postgres(
            "Guardrails.screen_inbound + Postgres vault", messages[: args.db_messages]
        )
    )
    say(
        "1. Screen throughput, one thread (per core = messages / process CPU seconds; the "
        f"first five rows: best of {rounds} interleaved passes)"
    )
    say(throughput_table(rows))
    say(
        "(the Postgres row's per-core figure leaves out the database server's own CPU: "
        "read its wall figure)"
    )
    say()

    corpus = load_pii_corpus(args.corpora / "pii")
    tuning, held_out = pii_halves(corpus)
    if args.smoke:
        tuning, held_out = tuning[:SMOKE_TEXTS_PER_HALF], held_out[:SMOKE_TEXTS_PER_HALF]
        corpus = tuning + held_out
    results = {
        "guardrails (offline)": score_pii(ours.detect, corpus),
        "presidio default, NoOp NLP": score_pii(presidio.detect, corpus),
    }
    say(f"2. PII detection, {len(corpus)} labelled texts (presidio-research synthetic sets)")
    say(pii_table(results))
    say()
    halves = {
        "tuning half (trained on)": score_pii(ours.detect, tuning),
        "held-out half": score_pii(ours.detect, held_out),
    }
    say(
        f"3. The same for our detector on each half: {len(tuning)} texts the name tagger was "
        f"trained on, {len(held_out)} it never saw (only the held-out column counts)"
    )
    say(pii_table(halves))
    say(
        "names: a conditional random field (python-crfsuite) over word features (the word, "
        "its shape and ending, census first-name and surname lists, its neighbours); the "
        "model ships in the package (guardrails/data/person_tagger.crfsuite), nothing is "
        "downloaded"
    )
    say()

    say("Aims")
    best = rows[0]
    tagger_rate = next(r for r in rows if r.name == "the name tagger alone").per_core
    person = halves["held-out half"][PERSON]
    say(
        f"{'PASS' if person.f1 >= AIM_PERSON_F1 else 'MISS'}  PERSON F1 >= {AIM_PERSON_F1} on "
        f"the held-out half: {person.f1:.2f} (precision {person.precision:.2f}, recall "
        f"{person.recall:.2f}; tuning half {halves['tuning half (trained on)'][PERSON].f1:.2f})"
    )
    say(
        f"{'PASS' if best.per_core >= AIM_PERSON_MSGS_PER_CORE else 'MISS'}  at least "
        f"{AIM_PERSON_MSGS_PER_CORE} msgs/s per core with names found: the whole screen "
        f"{best.per_core:,.0f}, the name tagger alone {tagger_rate:,.0f} (load avg now "
        f"{os.getloadavg()[0]:.2f})"
    )
    verdict = "PASS" if best.per_core >= AIM_MSGS_PER_CORE else "MISS"
    say(
        f"{verdict}  at least {AIM_MSGS_PER_CORE:,} msgs/s per core with toxicity off: "
        f"{best.per_core:,.0f} (half the messages with PII; {rows[1].per_core:,.0f} when all are)"
    )
    for entity in AIM_ENTITIES:
        f1 = results["guardrails (offline)"][entity].f1
        say(f"{'PASS' if f1 >= AIM_F1 else 'MISS'}  F1 >= {AIM_F1} on {entity}: {f1:.2f}")
    say(f"(whole run {time.perf_counter() - started:.0f} s)")

    results_dir = REPO / "bench" / "results"
    results_dir.mkdir(exist_ok=True)
    if not args.smoke:  # the latest full run stays the one on record
        (results_dir / "guardrails.txt").write_text("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
