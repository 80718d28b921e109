"""The cheap checks before detection (guardrails/prefilter.py) never hide personal data:
on the labelled PII corpus, the detector finds exactly the same values with them as
without them. They decide whether the listeners load presidio at all and how much each
stored text costs (guardrails/at_rest.py), so they must stay looser than the recognizers."""

from __future__ import annotations

from pathlib import Path

import pytest

from guardrails.corpora import load_pii_corpus
from guardrails.entities import CARD, IBAN, PERSON, SECRET, SSN
from guardrails.pii import PiiDetector, build_detector
from guardrails.prefilter import worth_running

CORPORA = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"
ENTITIES = [e for e in build_detector(names=False).entities if e != PERSON]


@pytest.fixture(scope="module")
def detectors() -> tuple[PiiDetector, PiiDetector]:
    checked = build_detector(names=False)
    unchecked = build_detector(names=False)
    unchecked.prefilter = False
    return checked, unchecked


def test_the_checks_hide_nothing_the_detector_finds_in_the_corpus(
    detectors: tuple[PiiDetector, PiiDetector],
) -> None:
    checked, unchecked = detectors
    texts = [sample.text for sample in load_pii_corpus(CORPORA / "pii")]
    texts += [
        "card 4242 4242 4242 4242, iban gb82 west 1234 5698 7654 32, ssn 536-22-8726",
        "key sk-proj-Zq7Lm2Xc9Vb4Nk8Rt5Wy3Hd6 and AKIAIOSFODNN7EXAMPLE, aws_secret_access_key",
        "ghp_" + "a" * 36 + " and xoxb-1234567890-abcdefghij",
    ]
    differing = [
        text for text in texts if checked.detect(text, ENTITIES) != unchecked.detect(text, ENTITIES)
    ]
    assert differing == []
    assert sum(1 for text in texts if checked.detect(text, [CARD, SSN, IBAN, SECRET])) > 10


def test_prose_without_digits_or_key_marks_needs_no_detector() -> None:
    prose = "Hello, I have a question about my order and the invoice that came with it.\n" * 130
    assert worth_running(prose, [CARD, SSN, IBAN, SECRET]) == []
