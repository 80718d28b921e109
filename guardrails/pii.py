"""Finding personal data in text with presidio-analyzer, fully offline.

The analyzer runs with presidio's `NoOpNlpEngine`, so no spaCy model is loaded or
downloaded, and with a recognizer set of presidio's own validators (Luhn for cards,
mod-97 for IBANs, `ipaddress` for IPs, SSN sanity rules) plus ours (see recognizers.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerRegistry
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpArtifacts, NoOpNlpEngine
from presidio_analyzer.predefined_recognizers import (
    IbanRecognizer,
    UsSsnRecognizer,
)

from guardrails.entities import (
    ALL_ENTITIES,
    PERSON,
    SECRET,
    Span,
)
from guardrails.person_tagger import PersonTagger
from guardrails.prefilter import worth_running
from guardrails.recognizers import (
    InternationalPhoneRecognizer,
    LuhnCardRecognizer,
    OfflineEmailRecognizer,
    PersonNameRecognizer,
    PublicIpRecognizer,
    SecretRecognizer,
    offline_tld_extractor,
)

LANGUAGE = "en"
# Below this presidio score a match is not reported. presidio's weakest SSN patterns
# (0.05) and unvalidated IBAN/card candidates fall under it; everything validated is 1.0.
MIN_SCORE = 0.4
# presidio's own flags, for its pattern recognizers ("my iban is gb42nawi..." counts);
# ours compile their own case-sensitive patterns, so "akia..." is not an AWS key and a
# lowercase word is not a name.
REGEX_FLAGS = re.DOTALL | re.MULTILINE | re.IGNORECASE


class _NoContextEnhancer(ContextAwareEnhancer):
    """The NoOp engine yields no tokens, so presidio's lemma enhancer could only deep-copy
    every result for nothing (about half of analysis time)."""

    def __init__(self) -> None:
        super().__init__(
            context_similarity_factor=0,
            min_score_with_context_similarity=0,
            context_prefix_count=0,
            context_suffix_count=0,
        )

    def enhance_using_context(
        self,
        text: str,
        raw_results: list[Any],
        nlp_artifacts: NlpArtifacts,
        recognizers: list[EntityRecognizer],
        context: list[str] | None = None,
    ) -> list[Any]:
        return raw_results


def no_op_nlp_engine() -> NoOpNlpEngine:
    engine = NoOpNlpEngine(models=[{"lang_code": LANGUAGE, "model_name": "none"}])
    engine.load()
    return engine


def our_recognizers(*, names: bool = True) -> list[EntityRecognizer]:
    recognizers: list[EntityRecognizer] = [
        OfflineEmailRecognizer(offline_tld_extractor()),
        InternationalPhoneRecognizer(),
        # Supersedes presidio's CreditCardRecognizer, whose issuer prefixes miss 19-digit
        # Visa, 2-series Mastercard and 12-digit Maestro numbers (9% of the corpus's cards).
        LuhnCardRecognizer(),
        UsSsnRecognizer(),
        IbanRecognizer(regex_flags=REGEX_FLAGS),  # "my iban is gb42nawi0445..." counts too
        PublicIpRecognizer(),  # 127.0.0.1 and ::1 identify no one
        SecretRecognizer(),
    ]
    if names:
        recognizers.append(PersonNameRecognizer(PersonTagger()))
    return recognizers


@dataclass
class PiiDetector:
    """Thread-safe once built: recognizers hold no per-call state."""

    analyzer: AnalyzerEngine
    entities: tuple[str, ...]
    regex_flags: int = REGEX_FLAGS
    min_score: float = MIN_SCORE
    prefilter: bool = True
    _artifacts: NlpArtifacts | None = None

    def __post_init__(self) -> None:
        if isinstance(self.analyzer.nlp_engine, NoOpNlpEngine):
            self._artifacts = self.analyzer.nlp_engine.process_text("", LANGUAGE)

    def detect(self, text: str, entities: Sequence[str] | None = None) -> list[Span]:
        """Non-overlapping spans of personal data in `text`, in order."""
        wanted = [e for e in (entities or self.entities) if e in self.entities]
        if self.prefilter:
            wanted = _worth_running(text, wanted)
        if not wanted:
            return []
        results = self.analyzer.analyze(
            text,
            LANGUAGE,
            entities=wanted,
            # The NoOp engine's artifacts are empty whatever the text: make them once.
            nlp_artifacts=self._artifacts,
            score_threshold=self.min_score,
            regex_flags=self.regex_flags,
        )
        spans = [Span(r.entity_type, r.start, r.end, r.score) for r in results]
        return resolve_overlaps(spans)


def _worth_running(text: str, entities: list[str]) -> list[str]:
    return worth_running(text, entities)


def resolve_overlaps(spans: list[Span]) -> list[Span]:
    """Where spans overlap, keep the higher-scoring one, then the longer one."""
    ranked = sorted(spans, key=lambda s: (-s.score, -(s.end - s.start), s.start))
    kept: list[Span] = []
    for span in ranked:
        if not any(span.overlaps(k) for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)


def build_detector(*, names: bool = True) -> PiiDetector:
    """Our offline detector: every entity in `entities.ALL_ENTITIES` (names optional)."""
    recognizers = our_recognizers(names=names)
    registry = RecognizerRegistry(supported_languages=[LANGUAGE])
    for recognizer in recognizers:
        registry.add_recognizer(recognizer)
    analyzer = AnalyzerEngine(
        registry=registry,
        nlp_engine=no_op_nlp_engine(),
        supported_languages=[LANGUAGE],
        context_aware_enhancer=_NoContextEnhancer(),
    )
    supported = {e for r in recognizers for e in r.supported_entities}
    return PiiDetector(analyzer, tuple(e for e in ALL_ENTITIES if e in supported))


def build_presidio_default_detector() -> PiiDetector:
    """presidio's default analyzer as far as it runs offline: all its predefined English
    recognizers (phone numbers through libphonenumber, URLs, dates...) and its context
    enhancer, on the NoOp engine since no spaCy model is installed; its e-mail recognizer
    is swapped for the offline one, as the stock one downloads the public suffix list.
    Names need spaCy's NER, so it finds none. For comparison in bench/ and evals."""
    engine = no_op_nlp_engine()
    registry = RecognizerRegistry(supported_languages=[LANGUAGE])
    registry.load_predefined_recognizers(languages=[LANGUAGE], nlp_engine=engine)
    registry.remove_recognizer("EmailRecognizer")
    registry.add_recognizer(OfflineEmailRecognizer(offline_tld_extractor()))
    analyzer = AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=[LANGUAGE])
    entities = tuple(e for e in ALL_ENTITIES if e not in (SECRET, PERSON))
    # presidio's own flags (it matches case-insensitively) and the same score floor as
    # ours, so the comparison is of recognizers, not thresholds.
    return PiiDetector(analyzer, entities, regex_flags=REGEX_FLAGS, prefilter=False)
