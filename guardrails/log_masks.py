"""Personal data and secrets in log text, found with plain regular expressions.

Log lines are masked (guardrails/log_redaction.py) in every process, including those
that never screen what people write (`chatops serve`, `smtp`, `migrate`). The screen's
detector (guardrails/pii.py) loads presidio, which imports spaCy, transformers and torch:
seconds of start-up for each of them. These patterns import nothing beyond the standard
library and use the screen's validators (the Luhn check for cards, mod-97 for IBANs,
`ipaddress`, the SSN rules). Where the screen weighs context, they mask: a log line loses
little by a masked number. People's names are the one kind they do not look for: log
lines carry ids and states, not what people wrote, and finding names takes the screen's
model.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from guardrails.entities import CARD, EMAIL, IBAN, IP, PHONE, SECRET, SSN, Span
from guardrails.luhn import luhn_valid

# API keys and tokens in the formats their issuers document, and PEM private keys.
_SECRETS = re.compile(
    "|".join(
        (
            r"\bxox[abposre]-[A-Za-z0-9-]{10,}",  # Slack tokens
            r"\bxapp-\d-[A-Za-z0-9-]{10,}",  # Slack app-level tokens
            r"https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+",
            r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",  # OpenAI
            r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b",  # AWS access key ids
            r"(?i:aws_?secret_?access_?key)\W{1,4}[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])",
            r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_\w{40,})",  # GitHub
            r"\bAIza[0-9A-Za-z_\-]{35}",  # Google API keys
            r"\b[rs]k_live_[0-9A-Za-z]{20,}",  # Stripe
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----",
            r"(?i:\bbearer\s+)[A-Za-z0-9._~+/\-]{20,}=*",  # an Authorization header's token
        )
    ),
    re.DOTALL,
)
_EMAIL = re.compile(r"(?<![\w.+\-])[\w.+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b", re.IGNORECASE)
_CARD = re.compile(r"(?<![\w\-])\d(?:[ \-]?\d){11,18}(?![\w\-])")
_SSN = re.compile(r"(?<![\w\-])(\d{3})([- .]?)(\d{2})\2(\d{4})(?![\w\-])")
_IPV4 = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.])")
_IPV6 = re.compile(r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
# A run of digits with the separators phone numbers are written with, optionally led by
# a `+` and followed by an extension.
_PHONE = re.compile(
    r"(?<![\w@./+\-])(?:\+\s?)?\(?\d[\d ().\-]{4,22}\d"
    r"(?:\s?(?:x|ext\.?|#)\s?\d{1,6})?(?![\w@:]|[.\-]\d)",
    re.IGNORECASE,
)
_NOT_PHONES = (
    re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$"),  # 2024-05-31
    re.compile(r"^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$"),  # 31.05.2024
    re.compile(r"^\d+\.\d+$"),  # 1796526816.656559 (a Slack ts), 12.5
    re.compile(r"^\d{1,3}(?:,\d{3})+(?:\.\d+)?$"),  # 1,234,567
)
PHONE_DIGITS = (7, 15)  # local numbers to E.164's maximum
# Characters at least one of which a string must hold for any pattern to match: most log
# strings (event names, states) hold none and are passed over in one scan.
_MIGHT_HOLD = re.compile(
    r"[\d@]|xox|xapp|hooks|sk-|AKIA|ASIA|ABIA|ACCA|(?i:aws)|gh|github_pat_|AIza|_live_|KEY"
    r"|(?i:bearer)"
)


@dataclass(frozen=True)
class _Kind:
    entity: str
    pattern: re.Pattern[str]
    valid: Callable[[str], bool]
    # How much of a match to try: the match itself, or (for IBANs, whose groups look like
    # the words that follow them) each shorter run of its space-separated groups.
    trim_words: bool = False


def _any(_value: str) -> bool:
    return True


def _card(value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    return luhn_valid(digits) and len(set(digits)) > 1


def _iban(value: str) -> bool:
    compact = value.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


def _ssn(value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area.startswith("9") or group == "00" or serial == "0000":
        return False
    return len(set(digits)) > 1


def _ip(value: str) -> bool:
    """An IP address, but not a loopback or unspecified one (127.0.0.1, ::1, 0.0.0.0):
    every machine has those, they name no one, and masking them would hide the local URLs
    a person is told to open."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    return not (address.is_loopback or address.is_unspecified)


def _phone(value: str) -> bool:
    main = re.sub(r"\s?(?:x|ext\.?|#)\s?\d{1,6}$", "", value, flags=re.IGNORECASE)
    digits = sum(c.isdigit() for c in main)
    if not PHONE_DIGITS[0] <= digits <= PHONE_DIGITS[1]:
        return False
    bare = main.lstrip("+ ")
    return not any(pattern.match(bare) for pattern in _NOT_PHONES)


# In order of precedence: a value found by an earlier kind is not looked at again.
_KINDS = (
    _Kind(SECRET, _SECRETS, _any),
    _Kind(EMAIL, _EMAIL, _any),
    _Kind(IBAN, _IBAN, _iban, trim_words=True),
    _Kind(CARD, _CARD, _card),
    _Kind(SSN, _SSN, _ssn),
    _Kind(IP, _IPV4, _ip),
    _Kind(IP, _IPV6, _ip),
    _Kind(PHONE, _PHONE, _phone),
)
MASKS = {
    SECRET: "<SECRET>",
    EMAIL: "<EMAIL>",
    IBAN: "<IBAN>",
    CARD: "<CARD>",
    SSN: "<SSN>",
    IP: "<IP>",
    PHONE: "<PHONE>",
}


def find(text: str) -> list[Span]:
    """The personal data and secrets in `text`: non-overlapping spans, in order."""
    if not _MIGHT_HOLD.search(text):
        return []
    taken: list[Span] = []
    for kind in _KINDS:
        for start, end in _matches(kind, text):
            span = Span(kind.entity, start, end, 1.0)
            if not any(span.overlaps(other) for other in taken):
                taken.append(span)
    return sorted(taken, key=lambda s: s.start)


def mask(text: str) -> str:
    """`text` with each value `find` finds replaced by its mask (<EMAIL>, <CARD>...)."""
    spans = find(text)
    if not spans:
        return text
    parts, at = [], 0
    for span in spans:
        parts += [text[at : span.start], MASKS[span.entity]]
        at = span.end
    parts.append(text[at:])
    return "".join(parts)


def _matches(kind: _Kind, text: str) -> Iterator[tuple[int, int]]:
    for match in kind.pattern.finditer(text):
        value = match.group()
        while value:
            if kind.valid(value):
                yield match.start(), match.start() + len(value)
                break
            if not kind.trim_words or " " not in value:
                break
            value = value.rsplit(" ", 1)[0]
