"""`chatops eval pii` and `chatops eval injection`: how well the guardrails detect, on the
shared corpora. Scoring functions are separate from printing so bench/ reuses them."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from guardrails.corpora import (
    DEFAULT_CORPORA,
    GOLD_ENTITIES,
    LabelledText,
    TextGroup,
    load_benign_controls,
    load_injection_attacks,
    load_pii_corpus,
)
from guardrails.entities import Span

# A found span counts for a labelled one of the same type when they share at least half
# of their combined characters, so "+1 555 0100 x12" found without " x12" still counts.
MIN_OVERLAP = 0.5


@dataclass
class Counts:
    gold: int = 0
    found: int = 0
    correct: int = 0

    @property
    def precision(self) -> float:
        return self.correct / self.found if self.found else 0.0

    @property
    def recall(self) -> float:
        return self.correct / self.gold if self.gold else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def overlap_ratio(a: Span, b: Span) -> float:
    shared = min(a.end, b.end) - max(a.start, b.start)
    if shared <= 0:
        return 0.0
    return shared / (max(a.end, b.end) - min(a.start, b.start))


def score_pii(
    detect: Callable[[str], Sequence[Span]], corpus: Sequence[LabelledText]
) -> dict[str, Counts]:
    """Per-entity counts over the corpus, for the entity types the corpus labels."""
    entities = sorted(set(GOLD_ENTITIES.values()))
    counts = {entity: Counts() for entity in entities}
    for sample in corpus:
        found = [s for s in detect(sample.text) if s.entity in counts]
        for entity in entities:
            gold = [s for s in sample.spans if s.entity == entity]
            mine = [s for s in found if s.entity == entity]
            counts[entity].gold += len(gold)
            counts[entity].found += len(mine)
            counts[entity].correct += _matches(gold, mine)
    return counts


def _matches(gold: list[Span], found: list[Span]) -> int:
    unused = list(found)
    correct = 0
    for g in gold:
        best = max(unused, key=lambda f: overlap_ratio(g, f), default=None)
        if best is not None and overlap_ratio(g, best) >= MIN_OVERLAP:
            unused.remove(best)
            correct += 1
    return correct


def pii_table(results: dict[str, dict[str, Counts]]) -> str:
    """Precision, recall and F1 per entity, one column group per detector."""
    names = list(results)
    header = f"{'entity':<14}{'gold':>6}" + "".join(
        f"  | {name[:24]:<24} {'P':>5} {'R':>5} {'F1':>5}" for name in names
    )
    lines = [header, "-" * len(header)]
    entities = list(next(iter(results.values())))
    for entity in entities:
        gold = next(iter(results.values()))[entity].gold
        row = f"{entity:<14}{gold:>6}"
        for name in names:
            c = results[name][entity]
            row += (
                f"  | {'found ' + str(c.found):<24} {c.precision:5.2f} {c.recall:5.2f} {c.f1:5.2f}"
            )
        lines.append(row)
    return "\n".join(lines)


@dataclass
class GroupRate:
    name: str
    total: int
    flagged: int
    examples: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.flagged / self.total if self.total else 0.0


def rate_groups(
    flags: Callable[[str], bool], groups: Sequence[TextGroup], *, keep_misses: bool
) -> list[GroupRate]:
    """How many texts of each group are flagged; keeps a few examples of the wrong kind
    (misses of attacks, or false alarms on benign text) for whoever tunes the screen."""
    rates = []
    for group in groups:
        rate = GroupRate(group.name, len(group.texts), 0)
        for text in group.texts:
            flagged = flags(text)
            rate.flagged += flagged
            if flagged != keep_misses and len(rate.examples) < 3:
                rate.examples.append(" ".join(text.split())[:100])
        rates.append(rate)
    return rates


def rates_table(title: str, rates: list[GroupRate]) -> str:
    lines = [f"{title:<42}{'texts':>7}{'flagged':>9}{'rate':>8}"]
    lines.append("-" * len(lines[0]))
    for r in rates:
        lines.append(f"{r.name:<42}{r.total:>7}{r.flagged:>9}{r.rate:>8.1%}")
    total = sum(r.total for r in rates)
    flagged = sum(r.flagged for r in rates)
    lines.append(f"{'all':<42}{total:>7}{flagged:>9}{flagged / total if total else 0:>8.1%}")
    return "\n".join(lines)


# --- The two CLI kinds (bot/commands/eval.py) ------------------------------------------

DEFAULT_PII_DATA = DEFAULT_CORPORA / "pii"


def run_pii(settings: object, args: argparse.Namespace) -> int:
    """`chatops eval pii [--data FOLDER] [--baseline]`: FOLDER is the pii corpus."""
    from guardrails.pii import build_detector, build_presidio_default_detector

    folder = getattr(args, "data", None) or DEFAULT_PII_DATA
    corpus = load_pii_corpus(folder)
    detectors = {"guardrails (offline)": build_detector()}
    if getattr(args, "baseline", False):
        # presidio warns, once per recognizer, about the non-English ones it leaves out.
        logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
        detectors["presidio default, NoOp NLP"] = build_presidio_default_detector()
    results = {name: score_pii(d.detect, corpus) for name, d in detectors.items()}
    print(f"PII detection on {len(corpus)} labelled texts in {folder}")
    print(f"(a found span counts when it shares >= {MIN_OVERLAP:.0%} of its characters)")
    print(pii_table(results))
    return 0


def run_injection(settings: object, args: argparse.Namespace) -> int:
    """`chatops eval injection [--data FOLDER]`: FOLDER holds injection/ and email/."""
    from core.settings import Settings
    from guardrails.classifier import load_classifier
    from guardrails.injection import InjectionScreen

    corpora = getattr(args, "data", None) or DEFAULT_CORPORA
    screen = InjectionScreen()
    if isinstance(settings, Settings) and settings.guardrails_injection_model:
        labels = [x.strip() for x in settings.guardrails_injection_labels.split(",") if x.strip()]
        screen = InjectionScreen(
            load_classifier(settings.guardrails_injection_model),
            settings.guardrails_injection_threshold,
            tuple(labels),
        )

    def flagged(text: str) -> bool:
        return screen.screen(text).flagged

    attacks = rate_groups(flagged, load_injection_attacks(corpora), keep_misses=True)
    benign = rate_groups(flagged, load_benign_controls(corpora), keep_misses=False)
    print(f"Prompt-injection screen ({screen.describe()}) on {corpora}")
    print(rates_table("attacks (detection rate)", attacks))
    print()
    print(rates_table("benign (false alarm rate)", benign))
    for title, rates in (("missed", attacks), ("false alarm", benign)):
        for r in rates:
            for example in r.examples[:1]:
                print(f"e.g. {title} [{r.name}]: {example}")
    return 0
