"""Cheap checks that rule a recognizer out before it runs, without importing presidio.

guardrails/pii.py uses them before each analysis; guardrails/at_rest.py uses them to
decide whether a text needs the detector at all, so a process that stores text (the Slack
and SMTP listeners) loads presidio only once a text might hold something to mask.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from guardrails.entities import CARD, EMAIL, IBAN, IP, PHONE, SECRET, SSN

# Cheap checks that rule a recognizer out before it runs: each is one C-speed scan, and
# a recognizer skipped saves presidio's pattern loop over the whole text. Each check is
# looser than the recognizer it guards, so it never hides a match. Each pattern starts
# with a plain character class (a digit, "@"), which lets the regex engine skip ahead to
# candidates instead of trying every position: 10 KB of prose is scanned in tens of
# microseconds (an alternation at the top, or a letter class first, costs ten times more).
MIGHT_CONTAIN: dict[str, re.Pattern[str]] = {
    EMAIL: re.compile(r"@"),
    PHONE: re.compile(r"\d(?:\D{0,3}\d){6}"),
    CARD: re.compile(r"\d(?:[ \-]?\d){11}"),
    SSN: re.compile(r"\d(?:\d{2}[- .]?\d{2}[- .]?\d{4}|\d{4}-\d{4}|\d{2}-\d{6})"),
    # presidio's IBAN pattern: two letters, two check digits, then at least two groups
    # of four (the letters are not looked for: slower, and looser is still safe).
    IBAN: re.compile(r"\d{2}(?:[ -]?[A-Za-z0-9]{4}){2}"),
    IP: re.compile(r"\d\.\d|[0-9A-Fa-f]:[0-9A-Fa-f:]|::"),
    SECRET: re.compile(
        r"\bxox[abposre]-|xapp-|hooks\.slack|\bsk-[\w-]{20}|(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]"
        r"|(?i:aws_?secret)|gh[pousr]_|github_pat_|AIza|k_live_|PRIVATE KEY"
    ),
    # No check for PERSON: names are written in lower case too ("my name is borna
    # jerković"), and the tagger reads the whole message anyway.
}
# Substrings one of which every secret the pattern above finds contains: looked for first
# (plain substring search), so prose without any of them skips the pattern altogether.
_SECRET_MARKS = (
    "xox",
    "xapp-",
    "hooks.slack",
    "sk-",
    "AKIA",
    "ASIA",
    "ABIA",
    "ACCA",
    "gh",
    "github_pat_",
    "AIza",
    "k_live_",
    "PRIVATE KEY",
)


def _might_hold_secret(text: str) -> bool:
    if not any(mark in text for mark in _SECRET_MARKS) and "ws" not in text.lower():
        return False
    return MIGHT_CONTAIN[SECRET].search(text) is not None


def worth_running(text: str, entities: Iterable[str]) -> list[str]:
    """The entities of `entities` that `text` might hold (all those with no check)."""
    return [e for e in entities if _might_hold(e, text)]


def _might_hold(entity: str, text: str) -> bool:
    if entity == SECRET:
        return _might_hold_secret(text)
    if entity in _NEED_DIGITS and not _has_digit(text):
        return False
    return entity not in MIGHT_CONTAIN or MIGHT_CONTAIN[entity].search(text) is not None


# Entities whose every check above needs a digit: a text without any skips them all.
_NEED_DIGITS = frozenset({PHONE, CARD, SSN, IBAN})


def _has_digit(text: str) -> bool:
    """Whether `text` has a digit: a few substring searches; a text with characters
    beyond ASCII (which may hold other scripts' digits) always counts as having one."""
    return not text.isascii() or any(digit in text for digit in "0123456789")
