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
from guardrails.prefilter import MIGHT_CONTAIN, worth_running

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


# One shortest match of each alternative of the secret pattern (MIGHT_CONTAIN[SECRET]).
SECRET_SAMPLES = [
    "xoxb-",
    "xapp-",
    "hooks.slack",
    "sk-" + "a" * 20,
    "AKIAX",
    "ASIA1",
    "ABIAZ",
    "ACCA9",
    "aWs_SeCrEt",
    "ghp_",
    "github_pat_",
    "AIza",
    "k_live_",
    "PRIVATE KEY",
]


def test_the_secret_marks_let_through_every_form_of_secret_the_pattern_finds() -> None:
    """Each alternative of the secret pattern, alone or inside prose, passes the marks
    that are looked for before the pattern runs."""
    # Its alternatives: one more than its top-level "|"s (the 3 others are in its group).
    alternatives = MIGHT_CONTAIN[SECRET].pattern.count("|") - 3 + 1
    assert len(SECRET_SAMPLES) == alternatives - 1 + 4  # the group's 4 have a sample each
    prose = "Hello, I have a question about my order.\n" * 50
    for sample in SECRET_SAMPLES:
        assert MIGHT_CONTAIN[SECRET].search(sample), sample
        for text in (sample, f"{prose} {sample} {prose}"):
            assert worth_running(text, [CARD, SECRET]) == [SECRET], sample
