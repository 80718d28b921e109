"""Finding personal data offline: each kind we promise, and no network on the way.

The detector is the real presidio AnalyzerEngine on its NoOp NLP engine with our
recognizers; the network guard replaces socket lookups and connects for the test.
"""

from __future__ import annotations

import pytest
import tldextract

from guardrails.entities import CARD, EMAIL, IBAN, IP, PERSON, PHONE, SECRET, SSN
from guardrails.pii import PiiDetector, build_detector


@pytest.fixture(scope="module")
def detector() -> PiiDetector:
    return build_detector()


def found(detector: PiiDetector, text: str) -> list[tuple[str, str]]:
    return [(s.entity, text[s.start : s.end]) for s in detector.detect(text)]


def test_detection_runs_with_the_network_blocked(no_network: list[str]) -> None:
    """Building the detector and finding an e-mail address makes no lookup or connection,
    where a stock tldextract (what presidio's e-mail recognizer uses) reaches out."""
    detector = build_detector()
    text = "Write to ana.lopez@example.co.uk or call +44 20 7946 0958."
    assert found(detector, text) == [
        (EMAIL, "ana.lopez@example.co.uk"),
        (PHONE, "+44 20 7946 0958"),
    ]
    assert no_network == []
    stock = tldextract.TLDExtract(cache_dir=None)
    assert stock("ana.lopez@example.co.uk").suffix == "co.uk"  # it falls back to its snapshot
    assert no_network, "the stock extractor should have tried the network first"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("reach me at j.doe+billing@acme-corp.io today", [(EMAIL, "j.doe+billing@acme-corp.io")]),
        ("Call +1 (415) 555-0132 ext. 12 please", [(PHONE, "+1 (415) 555-0132 ext. 12")]),
        ("mobile: 0049 30 901820", [(PHONE, "0049 30 901820")]),
        ("my card is 4111 1111 1111 1111", [(CARD, "4111 1111 1111 1111")]),
        ("card 4111 1111 1111 1112", []),  # fails the Luhn check
        ("my SSN is 536-22-8726", [(SSN, "536-22-8726")]),
        ("IBAN DE89 3704 0044 0532 0130 00", [(IBAN, "DE89 3704 0044 0532 0130 00")]),
        (
            "the server 10.20.30.40 and fe80::1ff:fe23:4567:890a",
            [(IP, "10.20.30.40"), (IP, "fe80::1ff:fe23:4567:890a")],
        ),
        ("token xoxb-2222-3333-AbCdEfGhIjKl", [(SECRET, "xoxb-2222-3333-AbCdEfGhIjKl")]),
        (
            "key sk-proj-abcdefghijklmnopqrstuvwx1234",
            [(SECRET, "sk-proj-abcdefghijklmnopqrstuvwx1234")],
        ),
        ("AWS AKIAIOSFODNN7EXAMPLE here", [(SECRET, "AKIAIOSFODNN7EXAMPLE")]),
        ("Please ask Jennifer Walsh about it", [(PERSON, "Jennifer Walsh")]),
        ("Regards, Okonkwo", [(PERSON, "Okonkwo")]),
    ],
)
def test_each_kind_of_personal_data_is_found(
    detector: PiiDetector, text: str, expected: list[tuple[str, str]]
) -> None:
    """Each promised kind is found with its exact extent; a Luhn-invalid card is not."""
    assert found(detector, text) == expected


def test_ordinary_numbers_are_left_alone(detector: PiiDetector) -> None:
    """Dates, amounts, order ids and versions are not taken for personal data, so the
    model still sees what the person asked about."""
    text = (
        "Order 88213409 shipped on 2024-05-31 for $1,249.99; invoice INV-2024-00017, "
        "version 3.12.1, May will be busier. Grace period is 14 days."
    )
    assert found(detector, text) == []
