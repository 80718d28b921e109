"""Our presidio recognizers: the ones presidio lacks, and offline versions of its own.

All of them are plain regular expressions plus validation, so detection needs no NLP
model and no network: presidio's e-mail recognizer asks tldextract for the public suffix
list, which it downloads unless told to use the snapshot shipped in the package.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any

import tldextract
from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import EmailRecognizer, IpRecognizer

from guardrails.entities import CARD, PERSON, PHONE, SECRET
from guardrails.luhn import luhn_valid
from guardrails.person_tagger import PersonTagger


def offline_tld_extractor() -> tldextract.TLDExtract:
    """A tldextract that reads only its bundled public suffix snapshot: no download, no
    cache directory written."""
    return tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)


# Top-level names reserved for testing and documentation (RFC 2606, RFC 6761) or in wide
# private use on company networks, which the public suffix list leaves out.
PRIVATE_USE_TLDS = frozenset(
    {"example", "test", "invalid", "localhost", "local", "internal", "corp", "home", "lan"}
    | {"intranet", "private"}
)


class OfflineEmailRecognizer(EmailRecognizer):
    """presidio's e-mail recognizer, validating domains against the bundled suffix list."""

    def __init__(self, extractor: tldextract.TLDExtract) -> None:
        super().__init__()
        self._extractor = extractor

    def validate_result(self, pattern_text: str) -> bool:
        if self._extractor(pattern_text).fqdn:
            return True
        # Mail inside companies and test setups uses names no public suffix lists.
        return pattern_text.rsplit(".", 1)[-1].lower() in PRIVATE_USE_TLDS


def _result(recognizer: EntityRecognizer, entity: str, start: int, end: int, score: float) -> Any:
    return RecognizerResult(
        entity_type=entity,
        start=start,
        end=end,
        score=score,
        recognition_metadata={
            RecognizerResult.RECOGNIZER_NAME_KEY: type(recognizer).__name__,
            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: recognizer.id,
        },
    )


# --- Phone numbers ------------------------------------------------------------------------

# A run of digits with the separators phone numbers are written with, optionally led by a
# `+` and followed by an extension. Validation below decides whether it is a phone number.
_PHONE_CANDIDATE = re.compile(
    r"(?<![\w@./+\-])"
    r"(?:\+\s?)?\(?\d[\d ().\-]{4,22}\d"
    r"(?:\s?(?:x|ext\.?|#)\s?\d{1,6})?"
    r"(?![\w@:]|[.\-]\d)",
    re.IGNORECASE,
)
_EXTENSION = re.compile(r"\s?(?:x|ext\.?|#)\s?\d{1,6}$", re.IGNORECASE)
_NOT_PHONES = (
    re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$"),  # 2024-05-31
    re.compile(r"^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$"),  # 31.05.2024, 5/31/24
    re.compile(r"^\d{3}-\d{2}-\d{4}$"),  # a US SSN, left to its own recognizer
    re.compile(r"^\d{5}-\d{4}$"),  # a US ZIP+4 code
    re.compile(r"^\d{4,5}-\d{3}$"),  # a Portuguese or Brazilian postcode
    re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$"),  # an IPv4 address
    re.compile(r"^\d{1,3}(?:,\d{3})+(?:\.\d+)?$"),  # 1,234,567
    re.compile(r"^\d+\.\d{1,2}$"),  # 1234567.50
)
# Words that, just before a number, say it is a phone number even when its shape alone
# would not ("Fax: 9498777106", "call 467 3395").
_PHONE_CONTEXT = re.compile(
    r"\b(?:phone|tel|telephone|mobile|cell|fax|call|reach|desk|office|whatsapp|sms|contact"
    r"|ph|mob|ring|text)\b\W{0,4}(?:(?:me|us|him|her|them|on|at|is|no)\W{1,3}){0,2}$",
    re.IGNORECASE,
)
_PHONE_CONTEXT_AFTER = re.compile(
    r"^\W{0,3}(?:office|fax|mobile|cell|home|work|tel|phone)\b", re.IGNORECASE
)
PHONE_CONTEXT_CHARS = 30
_CURRENCY_NEAR = re.compile(r"(?:[$€£¥]|\b(?:usd|eur|gbp|chf|jpy))\s?$", re.IGNORECASE)
PHONE_MIN_DIGITS = 7  # local numbers without area code, e.g. "467 3395"
PHONE_MAX_DIGITS = 15  # E.164's maximum
PHONE_MAX_GROUPS = 6
PHONE_SCORE = 0.6
PHONE_SCORE_INTERNATIONAL = 0.75  # a leading +, 00, parentheses or an extension


class InternationalPhoneRecognizer(EntityRecognizer):
    """Phone numbers as people write them, in any country's grouping.

    presidio's own phone recognizer asks libphonenumber to match every region in turn,
    which costs ~40 ms on a 500-character message and misses numbers it cannot assign to
    a region; this one accepts any formatted run of 7 to 15 digits that is not a date, an
    amount, an SSN, a ZIP+4 code or an IP address. A bare run of digits with no
    separators is not taken for a phone number: those are more often order or ticket ids.
    """

    def __init__(self) -> None:
        super().__init__(supported_entities=[PHONE], name="InternationalPhoneRecognizer")

    def load(self) -> None:
        """Nothing to load."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        results = []
        for match in _PHONE_CANDIDATE.finditer(text):
            score = _phone_score(text, match.start(), match.group())
            if score:
                results.append(_result(self, PHONE, match.start(), match.end(), score))
        return results


def _phone_score(text: str, start: int, candidate: str) -> float:
    main = _EXTENSION.sub("", candidate)
    digits = sum(c.isdigit() for c in main)
    if not PHONE_MIN_DIGITS <= digits <= PHONE_MAX_DIGITS:
        return 0.0
    if "  " in main or main.count("(") != main.count(")"):
        return 0.0
    groups = re.split(r"[ ().\-]+", main.strip("+ ()"))
    if len(groups) > PHONE_MAX_GROUPS:
        return 0.0
    international = main.startswith(("+", "00", "(")) or main != candidate
    end = start + len(candidate)
    context = bool(
        _PHONE_CONTEXT.search(text[max(0, start - PHONE_CONTEXT_CHARS) : start])
        or _PHONE_CONTEXT_AFTER.match(text[end : end + PHONE_CONTEXT_CHARS])
    )
    # One bare run of digits is more often an order or ticket id, and two runs split by
    # a space as often a house number and a postcode: either needs a word saying "phone".
    spaced_only = not any(c in main for c in "-.()+")
    if not (international or context) and (len(groups) == 1 or (spaced_only and len(groups) == 2)):
        return 0.0
    bare = main.lstrip("+ ")
    if any(pattern.match(bare) for pattern in _NOT_PHONES):
        return 0.0
    if _CURRENCY_NEAR.search(text[max(0, start - 5) : start]):
        return 0.0
    return PHONE_SCORE_INTERNATIONAL if international or context else PHONE_SCORE


# --- Payment cards -----------------------------------------------------------------------

_CARD_CANDIDATE = re.compile(r"(?<![\w\-])\d(?:[ \-]?\d){11,18}(?![\w\-])")
_CARD_CONTEXT = re.compile(
    r"\b(?:card|cc|visa|mastercard|master card|amex|american express|maestro|discover|jcb"
    r"|diners|unionpay|credit|debit)\b",
    re.IGNORECASE,
)
CARD_CONTEXT_CHARS = 40
CARD_MIN_DIGITS_WITHOUT_CONTEXT = 13
CARD_SCORE = 0.9  # below presidio's validated 1.0, above anything unvalidated


class LuhnCardRecognizer(EntityRecognizer):
    """Card numbers presidio's recognizer skips: 19-digit Visa, 2-series Mastercard,
    12-digit Maestro and other issuers' ranges. Any run of 12 to 19 digits, grouped or
    not, that passes the Luhn check; a random number passes one time in ten, so numbers
    shorter than 13 digits need a word like "card" nearby."""

    def __init__(self) -> None:
        super().__init__(supported_entities=[CARD], name="LuhnCardRecognizer")

    def load(self) -> None:
        """Nothing to load."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        results = []
        for match in _CARD_CANDIDATE.finditer(text):
            digits = re.sub(r"\D", "", match.group())
            if not luhn_valid(digits) or len(set(digits)) == 1:
                continue
            if len(digits) < CARD_MIN_DIGITS_WITHOUT_CONTEXT:
                before = text[max(0, match.start() - CARD_CONTEXT_CHARS) : match.start()]
                if not _CARD_CONTEXT.search(before):
                    continue
            results.append(_result(self, CARD, match.start(), match.end(), CARD_SCORE))
        return results


# --- API keys and tokens ------------------------------------------------------------------

SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("slack token", re.compile(r"\bxox[abposre]-[A-Za-z0-9-]{10,}")),
    ("slack app token", re.compile(r"\bxapp-\d-[A-Za-z0-9-]{10,}")),
    (
        "slack webhook",
        re.compile(r"https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+"),
    ),
    ("openai key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}")),
    ("aws access key id", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b")),
    (
        "aws secret access key",
        re.compile(r"(?i:aws_?secret_?access_?key)\W{1,4}([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"),
    ),
    ("github token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_\w{40,})")),
    ("google api key", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}")),
    ("stripe key", re.compile(r"\b[rs]k_live_[0-9A-Za-z]{20,}")),
    (
        "private key",
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
    ),
)
SECRET_SCORE = 0.95


class SecretRecognizer(EntityRecognizer):
    """API keys and tokens in the formats their issuers document (Slack, OpenAI, AWS,
    GitHub, Google, Stripe) and PEM private keys."""

    def __init__(self) -> None:
        super().__init__(supported_entities=[SECRET], name="SecretRecognizer")

    def load(self) -> None:
        """Nothing to load."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        results = []
        for _kind, pattern in SECRET_PATTERNS:
            for match in pattern.finditer(text):
                group = 1 if pattern.groups else 0
                results.append(
                    _result(self, SECRET, match.start(group), match.end(group), SECRET_SCORE)
                )
        return results


# --- People's names -----------------------------------------------------------------------


class PersonNameRecognizer(EntityRecognizer):
    """People's names, found offline by the CRF name tagger (person_tagger.py)."""

    def __init__(self, tagger: PersonTagger) -> None:
        super().__init__(supported_entities=[PERSON], name="PersonNameRecognizer")
        self._tagger = tagger

    def load(self) -> None:
        """The tagger is loaded by the caller."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        return [
            _result(self, PERSON, span.start, span.end, span.score)
            for span in self._tagger.find(text)
        ]


def all_entities(recognizers: Iterable[EntityRecognizer]) -> list[str]:
    return sorted({e for r in recognizers for e in r.supported_entities})


class PublicIpRecognizer(IpRecognizer):
    """presidio's IP recognizer, minus loopback and unspecified addresses (127.0.0.1, ::1,
    0.0.0.0): every machine has them, so they say nothing about a person, and masking them
    hid the local URLs a person is told to open (`chatops sandbox`'s "ready" line)."""

    def invalidate_result(self, pattern_text: str) -> bool:
        if super().invalidate_result(pattern_text):
            return True
        address = ipaddress.ip_interface(pattern_text).ip
        return address.is_loopback or address.is_unspecified
